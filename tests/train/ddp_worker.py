"""Run by test_trainer.py under torchrun (2 CPU processes, gloo): trains a few steps, then writes
this rank's final weights and the dataset indices it read."""

import json
import os
import sys
from pathlib import Path

from fake_clips import SMALL_MODEL, FakeClips
from safetensors.torch import save_file

from mmfast.train import get_train_config, train

out = Path(sys.argv[1])
rank = int(os.environ["RANK"])
data = FakeClips(n=64)
config = get_train_config(
    "tiny", model_overrides=SMALL_MODEL, steps=3, batch_size=2, log_every=1, checkpoint_every=100
)
result = train(config, out / "run", progress=False, dataset=data)
save_file(
    {k: v.contiguous() for k, v in result.model.state_dict().items()},
    str(out / f"rank{rank}.safetensors"),
)
(out / f"rank{rank}.json").write_text(json.dumps(data.seen))
