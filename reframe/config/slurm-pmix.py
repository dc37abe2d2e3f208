"""ReFrame site configuration: an example Slurm cluster, ranks started with `srun --mpi=pmix`.

Copy it and edit the names: hostnames (the login nodes' names, a regex), the partitions' Slurm
`access` options, the modules your site loads for MPI and HDF5 (or leave them empty when
ffbench was installed against the system's libraries), and which partitions have GPUs.

    reframe -C slurm-pmix.py -c $P/share/ffbench/reframe/ffbench_checks.py \
        -S ffb_bin=$P/bin -S storage_dir=/scratch/$USER/ffb -r --performance-report
"""
from reframe.core.backends import register_launcher
from reframe.core.launchers import JobLauncher


@register_launcher("srun-pmix")
class SrunPmix(JobLauncher):
    """srun with the PMIx plugin: Open MPI built against PMIx needs it to wire up the ranks."""

    def command(self, job):
        return ["srun", "--mpi=pmix"]


site_configuration = {
    "systems": [
        {
            "name": "cluster",
            "descr": "a Slurm cluster (example: edit hostnames, access and modules)",
            "hostnames": ["login.*", "cluster.*"],
            "modules_system": "lmod",
            "partitions": [
                {
                    "name": "cpu",
                    "descr": "CPU nodes",
                    "scheduler": "slurm",
                    "launcher": "srun-pmix",
                    "access": ["--partition=cpu", "--exclusive"],
                    "environs": ["ffbench"],
                    "max_jobs": 8,
                    "features": [],
                },
                {
                    "name": "gpu",
                    "descr": "GPU nodes, 8 GPUs each",
                    "scheduler": "slurm",
                    "launcher": "srun-pmix",
                    "access": ["--partition=gpu", "--gres=gpu:8", "--exclusive"],
                    "environs": ["ffbench"],
                    "max_jobs": 8,
                    "features": ["gpu"],
                },
            ],
        }
    ],
    "environments": [
        {
            "name": "ffbench",
            # What ffbench was built with (module names are the site's).
            "modules": ["openmpi", "hdf5"],
        }
    ],
}
