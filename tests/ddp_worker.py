"""Worker for the DDP test: train one recipe under torchrun and save this rank's final weights.

Usage: torchrun --nproc-per-node=2 tests/ddp_worker.py RECIPE RUN_DIR
"""

import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from zoo_core.recipe import load_recipe
from zoo_core.train.checkpoint import unwrap_state_dict
from zoo_core.train.run import prepare_run_dir
from zoo_core.train.trainer import DefaultTrainer


def main() -> None:
    recipe = load_recipe(sys.argv[1])
    run_dir = Path(sys.argv[2])
    rank = int(os.environ["RANK"])
    if rank == 0:
        prepare_run_dir(recipe, run_dir, resume=False)
    trainer = DefaultTrainer(recipe, run_dir, progress=False)
    trainer.fit()
    run_dir.mkdir(parents=True, exist_ok=True)
    save_file(unwrap_state_dict(trainer.model.state_dict()), run_dir / f"rank{rank}.safetensors")


if __name__ == "__main__":
    main()
