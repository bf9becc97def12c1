"""Runner set-up shared by the tools (``train.py``, ``test.py``,
``test_robustness.py``): their common options, merged as mmpretrain's
tools merge them, and the CPU process group."""
import argparse
import os
import os.path as osp
import socket
import subprocess
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from .config_rules import iter_dicts, merge_options


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """Add the options both tools share.

    ``--no-pin-memory``, ``--cfg-options``, ``--launcher`` and
    ``--local-rank`` (set by ``torch.distributed.launch``).

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
    """
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the dataloaders')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as key=value pairs '
        '(e.g. osr_split=2 train_dataloader.batch_size=64)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the command line; export ``LOCAL_RANK`` if no launcher did.

    Args:
        parser (argparse.ArgumentParser): A parser with
            :func:`add_runner_args` applied.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def fix_persistent_workers(cfg: Config) -> None:
    """Turn ``persistent_workers`` off wherever ``num_workers`` is 0.

    ``torch.utils.data.DataLoader`` refuses ``persistent_workers=True``
    without workers; configs and CLI overrides can easily combine them.
    """
    for node in iter_dicts(cfg._cfg_dict):
        if node.get('persistent_workers') and not node.get('num_workers'):
            node['persistent_workers'] = False


def make_workers_resumable(loader: Optional[dict]) -> None:
    """Restart the training workers every epoch, seeded from the
    checkpointed torch generator, so that ``--resume`` redraws the data
    augmentation of an uninterrupted run (see
    :func:`gradmix_plugin.utils.resumable_worker_init_fn`). A
    ``worker_init_fn`` of the config is kept.

    Args:
        loader (dict, optional): The ``train_dataloader`` config, updated
            in place; nothing happens without workers.
    """
    if loader is None or not loader.get('num_workers', 0):
        return
    if loader.get('persistent_workers'):
        print_log(
            'train_dataloader: persistent_workers turned off, so that the '
            'workers of every epoch are seeded from the checkpointed random '
            'state and --resume is exact',
            logger='current')
    loader.persistent_workers = False
    loader.setdefault('worker_init_fn',
                      dict(type='resumable_worker_init_fn'))


def prepare_config(cfg: Config,
                   config_path: str,
                   work_dir: Optional[str] = None,
                   launcher: str = 'none',
                   cfg_options: Optional[dict] = None) -> Config:
    """Apply what both tools need to a loaded config.

    Merges ``cfg_options`` with the rules of
    :mod:`gradmix_plugin.utils.config_rules` (``osr_split`` and
    ``data_root`` reach every dataset, the top-level
    ``data_preprocessor`` fills the model's), sets the work dir and turns
    ``persistent_workers`` off where there are no workers.

    Args:
        cfg (Config): The config as parsed from ``config_path``, the
            tool's own settings already applied.
        config_path (str): Path of the config file (names the default
            work dir ``./work_dirs/<config name>``).
        work_dir (str, optional): Work dir from the command line; it wins
            over the config's. Defaults to None.
        launcher (str): Job launcher. Defaults to 'none'.
        cfg_options (dict, optional): ``--cfg-options``. Defaults to None.

    Returns:
        Config: The same config, updated in place.
    """
    merge_options(cfg, cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join(
            './work_dirs',
            osp.splitext(osp.basename(config_path))[0])
    fix_persistent_workers(cfg)
    return cfg


def add_custom_hook(cfg: Config, hook_type: str, **kwargs) -> None:
    """Append ``dict(type=hook_type, **kwargs)`` to ``custom_hooks``
    unless a hook of that type is there already.

    Args:
        cfg (Config): The config, updated in place.
        hook_type (str): The registered hook type.
        **kwargs: Arguments of the hook.
    """
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(h.get('type') == hook_type for h in hooks):
        hooks.append(dict(type=hook_type, **kwargs))
    cfg.custom_hooks = hooks


def free_port(host: str = '127.0.0.1') -> int:
    """A TCP port that is free now (the system's pick), for a process
    group's rendezvous.

    Args:
        host (str): The interface. Defaults to ``'127.0.0.1'``.

    Returns:
        int: The port.
    """
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


#: Seconds a CPU (gloo) process group waits for a stalled rank unless
#: ``env_cfg.dist_cfg.timeout`` says otherwise (torch's default is 1800).
CPU_DIST_TIMEOUT = 600


def setup_distributed(cfg: Config, launcher: str) -> None:
    """Prepare a distributed run; on CPU, use gloo and device-less DDP.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and wraps the
    model with ``device_ids=[LOCAL_RANK]``, which both fail without CUDA.
    On CPU the process group is therefore initialised here, with gloo,
    before the Runner is built (the Runner then skips its own
    initialisation), and DDP gets ``device_ids=None``. With
    ``launcher='slurm'`` (a task of ``srun``) the rank, world size, local
    rank and master address come from SLURM's environment as mmengine's
    slurm launcher takes them (``SLURM_PROCID``, ``SLURM_NTASKS``,
    ``SLURM_LOCALID``, the first host of ``SLURM_NODELIST``; the port from
    ``MASTER_PORT``, else 29500). With CUDA nothing is changed: mmengine
    initialises nccl as configured. On CPU a stalled rank stops the run
    after ``env_cfg.dist_cfg.timeout`` seconds, :data:`CPU_DIST_TIMEOUT`
    unless the config sets it.

    Args:
        cfg (Config): The config; ``env_cfg.dist_cfg`` and
            ``model_wrapper_cfg`` are updated in place on CPU.
        launcher (str): 'none', 'pytorch', 'slurm' or 'mpi'.

    Raises:
        ValueError: For 'mpi' on CPU, or 'slurm' outside a SLURM task.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher not in ('pytorch', 'slurm'):
        raise ValueError(
            f'launcher {launcher!r} needs CUDA; on CPU use torchrun with '
            "'--launcher pytorch' (see tools/dist_train.sh) or srun with "
            "'--launcher slurm'")
    if launcher == 'slurm':
        missing = [
            key for key in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')
            if key not in os.environ
        ]
        if missing:
            raise ValueError(
                f"launcher 'slurm' needs the environment of a SLURM task, "
                f'but {", ".join(missing)} is not set: start the tool '
                "through srun (tools/run_protocol.py --launcher slurm does), "
                "or use torchrun with '--launcher pytorch'")
        if 'MASTER_ADDR' not in os.environ:
            nodes = os.environ['SLURM_NODELIST']
            try:
                result = subprocess.run(
                    ['scontrol', 'show', 'hostnames', nodes],
                    capture_output=True,
                    text=True)
                hosts, error = result.stdout.split(), result.stderr.strip()
            except FileNotFoundError as err:
                hosts, error = [], str(err)
            if not hosts:
                raise ValueError(
                    f"launcher 'slurm': 'scontrol show hostnames {nodes}' "
                    f'gave no host ({error}); set MASTER_ADDR to the host '
                    'of rank 0')
            os.environ['MASTER_ADDR'] = hosts[0]
        os.environ.setdefault('MASTER_PORT', '29500')
        os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
        os.environ['RANK'] = os.environ['SLURM_PROCID']
        os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    if cfg.get('env_cfg') is None:
        cfg.env_cfg = {}
    if cfg.env_cfg.get('dist_cfg') is None:
        cfg.env_cfg.dist_cfg = {}
    dist_cfg = cfg.env_cfg.dist_cfg
    dist_cfg['backend'] = 'gloo'
    if dist_cfg.get('timeout') is None:
        # gloo would wait 1800 s for a stalled rank.
        dist_cfg['timeout'] = CPU_DIST_TIMEOUT
    if not torch_dist.is_initialized():
        timeout = dist_cfg['timeout']
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            timeout=timedelta(seconds=timeout))
        print_log(
            f'initialised gloo process group: rank {torch_dist.get_rank()} '
            f'of {torch_dist.get_world_size()}',
            logger='current')
    wrapper_cfg = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper_cfg.setdefault('type', 'MMDistributedDataParallel')
    wrapper_cfg.setdefault('broadcast_buffers', False)
    wrapper_cfg.setdefault('find_unused_parameters',
                           cfg.get('find_unused_parameters', False))
    wrapper_cfg['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper_cfg


def merge_tool_args(cfg: Config, args: argparse.Namespace) -> Config:
    """``--launcher``, ``--work-dir`` and ``--cfg-options`` of a tool, merged
    as mmpretrain's tools merge them, and :class:`OSRRunner` as the runner
    when the config names none (it applies the config rules).

    Args:
        cfg (Config): The config as read from ``args.config``.
        args (argparse.Namespace): With ``config``, ``launcher``,
            ``work_dir`` and ``cfg_options`` (see :func:`add_runner_args`).

    Returns:
        Config: The same config, updated in place.
    """
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join(
            './work_dirs',
            osp.splitext(osp.basename(args.config))[0])
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.setdefault('runner_type', 'OSRRunner')
    return cfg


def merge_test_args(cfg: Config, args: argparse.Namespace) -> Config:
    """The config of a tool that tests ``args.checkpoint``.

    Loads the checkpoint without resuming (``OSRRunner`` checks its
    provenance and fit before testing), ``--allow-mismatch``, pinned memory
    only with CUDA (never with ``--no-pin-memory``), then
    :func:`merge_tool_args`.

    Args:
        cfg (Config): The config as read from ``args.config``.
        args (argparse.Namespace): With ``checkpoint``, ``allow_mismatch``,
            ``no_pin_memory`` and what :func:`merge_tool_args` reads.

    Returns:
        Config: The same config, updated in place.
    """
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.allow_mismatch:
        cfg.allow_mismatch = True
    cfg.test_dataloader.setdefault('pin_memory', torch.cuda.is_available())
    if args.no_pin_memory:
        cfg.test_dataloader.pin_memory = False
    return merge_tool_args(cfg, args)
