"""Planning, the first stage of a run, which only reads: what a request asks of the target, checked against what the
repository holds; the arrays' metadata in the writable session; the blocks the write is cut into."""
