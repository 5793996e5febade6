"""The same job as `trtsr run` on a Ray cluster (Ray Data, stateful upscaling actors).

Needs the `distributed` extra (ray[data], which brings pyarrow); the base install never imports it.
"""

from trtsr.distributed.batch import BatchReport, BatchSettings, expand_inputs, plan_jobs, upscale_dataset

__all__ = ["BatchReport", "BatchSettings", "expand_inputs", "plan_jobs", "upscale_dataset"]
