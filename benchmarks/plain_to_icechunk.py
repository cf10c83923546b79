"""The script icefloe is meant to replace: the synthetic dataset into a new repository with `to_icechunk` on dask's
default (threaded) scheduler, one commit. benchmarks/end_to_end.py times it as a whole process.

    python -m benchmarks.plain_to_icechunk TARGET NTIME
"""

import sys

import icechunk
from icechunk.xarray import to_icechunk

from tasks.sources import SyntheticDataset

if __name__ == "__main__":
    target, ntime = sys.argv[1], int(sys.argv[2])
    variables = ("t2m", "u10")
    dataset = SyntheticDataset(ntime=ntime, nlat=721, nlon=1440, variables=variables, time_chunk=8, freq="6h").open()
    session = icechunk.Repository.create(icechunk.local_filesystem_storage(target)).writable_session("main")
    to_icechunk(dataset, session, mode="w", encoding={name: {"chunks": (8, 361, 720)} for name in variables})
    session.commit("plain to_icechunk")
