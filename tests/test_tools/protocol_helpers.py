"""What the tests of ``tools/run_protocol.py`` share (here, and on the
real SLURM cluster in ``slurm/``): the tool as a module, the digits config
made tiny, and tiny stage configs written next to a test."""
import importlib
import json
import os.path as osp
import sys
from typing import Sequence

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools')
if TOOLS not in sys.path:
    sys.path.append(TOOLS)  # last: tools/test.py must not shadow `test`
run_protocol = importlib.import_module('run_protocol')

CONFIG = osp.join(REPO, 'configs', 'gradmix_resnet18_digits.py')
NAME = 'gradmix_resnet18_digits'
#: The reference's two-stage recipe on the digits (configs/reference/).
STAGE1 = osp.join(REPO, 'configs', 'reference',
                  'ref_digits_stage1_simclr_gradmix_resnet18.py')
STAGE2 = osp.join(REPO, 'configs', 'reference',
                  'ref_digits_stage2_supcon_simclr_gradmix_resnet18.py')
# A narrow network, one epoch of 2 iterations, 40 test images, no
# validation during training.
TINY = [
    'model.backbone.stem_channels=8', 'model.backbone.base_channels=8',
    'model.projector.in_channels=64', 'model.projector.hid_channels=64',
    'train_cfg.max_epochs=1', 'param_scheduler.end=1',
    'param_scheduler.T_max=1', 'train_dataloader.batch_size=16',
    'train_dataloader.dataset.dataset.indices=48',
    'test_dataloader.dataset.dataset.indices=40',
    'custom_hooks.0.dataloader.dataset.dataset.indices=48', 'val_cfg=None',
    'val_dataloader=None', 'val_evaluator=None', 'test_evaluator.knn_k=5'
]
THREADS = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def protocol(work_root,
             *extra: str,
             splits: Sequence[str] = ('0', '1'),
             options: Sequence[str] = TINY,
             configs: Sequence[str] = (CONFIG, )) -> int:
    """``tools/run_protocol.py`` in this process; its exit status."""
    return run_protocol.main([
        *configs, '--splits', *splits, '--seeds', '0', '--work-root',
        str(work_root), *extra, '--cfg-options', *options
    ])


def read_state(root, name, recipe=NAME) -> dict:
    """``state.json`` of the run ``name`` (``split<k>_seed<s>``)."""
    with open(osp.join(root, recipe, name, 'state.json')) as f:
        return json.load(f)


def write_config(path, base: str, text: str = '') -> str:
    """A config file at ``path`` inheriting ``base``, plus ``text``."""
    with open(path, 'w') as f:
        f.write(f'_base_ = [{base!r}]\n{text}')
    return str(path)
