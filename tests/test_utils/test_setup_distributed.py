"""setup_distributed on CPU with ``--launcher slurm``: the rank, world size,
local rank and master address come from SLURM's environment, as mmengine's
slurm launcher takes them, for a gloo group (a real ``srun``:
tests/test_tools/slurm)."""
import os
import stat

import pytest
import torch
from mmengine.config import Config

from gradmix_plugin.utils import setup_env

SLURM_TASK = dict(
    SLURM_PROCID='3', SLURM_NTASKS='4', SLURM_LOCALID='1',
    SLURM_NODELIST='node[7-8]')
SET = ('MASTER_ADDR', 'MASTER_PORT', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK')


@pytest.fixture
def cpu_task(monkeypatch):
    """No CUDA, a process group that counts as started, and every
    variable the launcher sets restored afterwards."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(setup_env.torch_dist, 'is_initialized', lambda: True)
    for key in SET + tuple(SLURM_TASK):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def fake_scontrol(tmp_path, monkeypatch, text):
    script = tmp_path / 'scontrol'
    script.write_text(f'#!/usr/bin/env bash\n{text}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv('PATH', f'{tmp_path}{os.pathsep}{os.environ["PATH"]}')


def test_slurm_task_environment_gives_rank_and_master(cpu_task, tmp_path):
    for key, value in SLURM_TASK.items():
        cpu_task.setenv(key, value)
    fake_scontrol(tmp_path, cpu_task,
                  '[[ "$*" == "show hostnames node[7-8]" ]] && '
                  'printf "node7\\nnode8\\n"')
    cfg = Config(dict(find_unused_parameters=True))
    setup_env.setup_distributed(cfg, 'slurm')
    assert {key: os.environ[key] for key in SET} == dict(
        MASTER_ADDR='node7', MASTER_PORT='29500', RANK='3', WORLD_SIZE='4',
        LOCAL_RANK='1')
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=True, device_ids=None)


def test_master_address_and_port_given_are_kept(cpu_task):
    for key, value in SLURM_TASK.items():
        cpu_task.setenv(key, value)
    cpu_task.setenv('MASTER_ADDR', '10.0.0.5')
    cpu_task.setenv('MASTER_PORT', '31000')
    cpu_task.setenv('PATH', '')  # scontrol is not needed
    setup_env.setup_distributed(Config(), 'slurm')
    assert (os.environ['MASTER_ADDR'], os.environ['MASTER_PORT']) == (
        '10.0.0.5', '31000')


def test_slurm_launcher_outside_a_task_is_refused(cpu_task):
    cpu_task.setenv('SLURM_NODELIST', 'node1')
    with pytest.raises(
            ValueError,
            match="launcher 'slurm' needs the environment of a SLURM task, "
            'but SLURM_PROCID, SLURM_NTASKS is not set: start the tool '
            'through srun'):
        setup_env.setup_distributed(Config(), 'slurm')


def test_unresolvable_node_list_is_refused(cpu_task, tmp_path):
    for key, value in SLURM_TASK.items():
        cpu_task.setenv(key, value)
    fake_scontrol(tmp_path, cpu_task,
                  'echo "scontrol: error: Invalid hostlist" >&2; exit 1')
    with pytest.raises(
            ValueError,
            match=r"'scontrol show hostnames node\[7-8\]' gave no host "
            r'\(scontrol: error: Invalid hostlist\); set MASTER_ADDR'):
        setup_env.setup_distributed(Config(), 'slurm')


def test_mpi_on_cpu_names_the_launchers_that_work(cpu_task):
    with pytest.raises(ValueError,
                       match="launcher 'mpi' needs CUDA; on CPU use torchrun "
                       "with '--launcher pytorch'.* or srun with "
                       "'--launcher slurm'"):
        setup_env.setup_distributed(Config(), 'mpi')


@pytest.mark.parametrize('given, expected',
                         [(None, setup_env.CPU_DIST_TIMEOUT), (120, 120)])
def test_cpu_process_group_timeout(cpu_task, given, expected):
    """A CPU group waits CPU_DIST_TIMEOUT s for a stalled rank (not gloo's
    1800 s) unless env_cfg.dist_cfg.timeout is set."""
    cpu_task.setenv('RANK', '0')
    cpu_task.setenv('WORLD_SIZE', '1')
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(timeout=given))))
    setup_env.setup_distributed(cfg, 'pytorch')
    assert cfg.env_cfg.dist_cfg.timeout == expected
