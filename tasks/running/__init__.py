"""Running the stages in order, whoever orchestrates them: the seam an orchestrator fills, the data path every run
shares, each kind of run, the runner without Prefect, and the cluster."""
