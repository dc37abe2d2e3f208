"""ReFrame site configuration: this machine, programs started with mpirun (Open MPI or MPICH).

    reframe -C reframe/config/local.py -c reframe/ffbench_checks.py -S ffb_bin=build/bin -r

The partition has the `gpu` feature when an NVIDIA device node exists, so the GPU checks run
there. Open MPI refuses to run as root without the OMPI_ALLOW_RUN_AS_ROOT pair (set below, as the
Makefile does), and oversubscription lets 2-rank checks run on a 1-core machine.
"""
import os

HAS_GPU = os.path.exists("/dev/nvidia0")

site_configuration = {
    "systems": [
        {
            "name": "local",
            "descr": "this machine (mpirun)",
            "hostnames": [".*"],
            "modules_system": "nomod",
            "partitions": [
                {
                    "name": "default",
                    "descr": "every core of this machine" + (", with GPUs" if HAS_GPU else ""),
                    "scheduler": "local",
                    "launcher": "mpirun",
                    "environs": ["ffbench"],
                    "max_jobs": 1,  # the checks measure: one at a time
                    "features": ["gpu"] if HAS_GPU else [],
                }
            ],
        }
    ],
    "environments": [
        {
            "name": "ffbench",
            "env_vars": [
                ["OMPI_ALLOW_RUN_AS_ROOT", "1"],
                ["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"],
                ["OMPI_MCA_rmaps_base_oversubscribe", "1"],
            ],
        }
    ],
}
