"""tools/run_protocol.py against a real one-node SLURM cluster (the
``slurm_cluster`` fixture; skipped without SLURM): CPU jobs (``--gpus-per-job
0``, gloo) submitted with sbatch, trained and tested through srun,
summarised; a job cancelled with scancel and resumed; two tasks against
one process; the stages of a recipe chained with ``--dependency=afterok``.

Every run is the tiny digits run of ``protocol_helpers.TINY`` with one CPU
per task, so the jobs of a test run side by side on two cores."""
import json
import os
import os.path as osp
import time

import pytest
from protocol_helpers import (
    CONFIG,
    STAGE1,
    STAGE2,
    THREADS,
    TINY,
    protocol,
    read_state,
    run_protocol,
    write_config,
)

pytestmark = pytest.mark.slow

#: Seconds a test waits for its jobs at most.
JOB_TIMEOUT = 600


@pytest.fixture
def job_env(monkeypatch, tmp_path):
    """One thread per task; ``tmp_path`` importable in the jobs (sbatch
    passes the environment on)."""
    for key, value in THREADS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(
        'PYTHONPATH',
        os.pathsep.join([str(tmp_path),
                         os.environ.get('PYTHONPATH', '')]))


def cpu_slurm(cluster, ntasks=1):
    """The options of CPU jobs on the test cluster."""
    return ('--launcher', 'slurm', '--partition', cluster.partition,
            '--gpus-per-job', '0', '--ntasks', str(ntasks),
            '--cpus-per-task', '1')


def explain(cluster, work_dir):
    """The job outputs, the run's log and the daemons' logs, for a failed
    assertion."""
    texts = []
    for name in sorted(os.listdir(work_dir)):
        if name.startswith('slurm-') or name == 'protocol.log':
            with open(osp.join(work_dir, name), errors='replace') as f:
                texts.append(f'--- {name}\n' + f.read()[-3000:])
    return '\n'.join(texts) + '\n' + cluster.logs(10)


def wait_until(condition, what, timeout=JOB_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f'no {what} after {timeout} s'
        time.sleep(0.2)


def test_protocol_runs_as_cpu_jobs(slurm_cluster, tmp_path, job_env,
                                   capsys):
    """2 splits x 1 seed: two jobs, trained and tested through srun,
    summarised with --summarize-only; the rerun submits nothing."""
    assert protocol(tmp_path, *cpu_slurm(slurm_cluster)) == 0
    out = capsys.readouterr().out
    jobs = [read_state(tmp_path, f'split{k}_seed0')['job_id'] for k in (0, 1)]
    assert len(set(jobs)) == 2
    for k, job in enumerate(jobs):
        assert f'split {k} seed 0: submitted job {job}' in out
    slurm_cluster.wait_for_jobs(jobs, JOB_TIMEOUT)
    for k, job in enumerate(jobs):
        work_dir = osp.join(tmp_path, 'gradmix_resnet18_digits',
                            f'split{k}_seed0')
        state = read_state(tmp_path, f'split{k}_seed0')
        assert state['status'] == 'done', explain(slurm_cluster, work_dir)
        assert state['job_id'] == job
        assert osp.exists(osp.join(work_dir, f'slurm-{job}.out'))
        with open(state['log']) as f:
            log = f.read()
        assert log.count('$ srun --ntasks=1 --cpus-per-task=1 ') == 2
        # tools/train.py and tools/test.py with --launcher slurm on CPU.
        assert log.count('initialised gloo process group: rank 0 of 1') \
            == 2

    assert protocol(tmp_path, '--summarize-only') == 0
    assert 'mean ± std over 2 runs' in capsys.readouterr().out
    assert protocol(tmp_path, *cpu_slurm(slurm_cluster)) == 0
    out = capsys.readouterr().out
    assert '2 runs, 2 done, 0 to run' in out and 'submitted' not in out
    assert slurm_cluster.jobs() == []


STALL_HOOK = '''
import os
import time

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class StallAfterFirstEpochHook(Hook):
    """After the first epoch's checkpoint, wait while STALL_FILE exists."""

    priority = 'LOWEST'  # after the CheckpointHook

    def after_train_epoch(self, runner):
        path = os.environ['STALL_FILE']
        if runner.epoch == 0:
            open(path + '.reached', 'w').close()
            while os.path.exists(path):
                time.sleep(0.1)
'''


def test_cancelled_job_is_marked_and_resumed(slurm_cluster, tmp_path,
                                             job_env, monkeypatch, capsys):
    """scancel while the job trains (held after its first checkpoint of
    two): the run is marked interrupted, and the next run submits it again
    and resumes from that checkpoint."""
    (tmp_path / 'stall_hook.py').write_text(STALL_HOOK)
    stall = tmp_path / 'stall'
    stall.touch()
    monkeypatch.setenv('STALL_FILE', str(stall))
    config = write_config(
        tmp_path / 'digits_stall.py', CONFIG,
        "custom_imports = dict(imports=['gradmix_plugin', 'stall_hook'], "
        'allow_failed_imports=False)\n'
        'custom_hooks = [_base_.osr_bank_hook, '
        "dict(type='StallAfterFirstEpochHook')]\n")
    options = TINY + [
        'train_cfg.max_epochs=2', 'param_scheduler.end=2',
        'param_scheduler.T_max=2', 'default_hooks.checkpoint.interval=1'
    ]
    root = tmp_path / 'runs'

    def run():
        return protocol(root, *cpu_slurm(slurm_cluster), configs=(config, ),
                        splits=('0', ), options=options)

    work_dir = osp.join(root, 'digits_stall', 'split0_seed0')
    assert run() == 0
    job = read_state(root, 'split0_seed0', 'digits_stall')['job_id']
    wait_until(
        lambda: osp.exists(f'{stall}.reached') or job not in
        slurm_cluster.jobs(), 'first epoch')
    assert osp.exists(f'{stall}.reached'), explain(slurm_cluster, work_dir)
    assert osp.exists(osp.join(work_dir, 'last_checkpoint'))
    assert read_state(root, 'split0_seed0', 'digits_stall')['status'] == \
        'training'
    slurm_cluster.client('scancel', job)
    slurm_cluster.wait_for_jobs([job], JOB_TIMEOUT)
    state = read_state(root, 'split0_seed0', 'digits_stall')
    assert state['status'] == 'interrupted', explain(slurm_cluster, work_dir)
    assert state['interrupted_in'] == 'training'

    stall.unlink()
    capsys.readouterr()
    assert run() == 0
    assert 'split 0 seed 0: submitted job' in capsys.readouterr().out
    resumed = read_state(root, 'split0_seed0', 'digits_stall')['job_id']
    assert resumed != job
    slurm_cluster.wait_for_jobs([resumed], JOB_TIMEOUT)
    state = read_state(root, 'split0_seed0', 'digits_stall')
    assert state['status'] == 'done', explain(slurm_cluster, work_dir)
    with open(state['log']) as f:
        assert 'resumed epoch: 1' in f.read()


# Data parallel = one process: two fixed views (the image and its mirror),
# no shuffling (the two ranks' batches of 4 are the 1-process batch of 8),
# BatchNorm on running statistics, no GradMix (its partners are drawn per
# process), full batches only (26 known images: 3 steps either way).
DDP_CONFIG = '''
model = dict(backbone=dict(norm_eval=True), gradmix=None)
fixed_views = [
    dict(type='MultiView', num_views=[1, 1], transforms=[
        [], [dict(type='RandomFlip', prob=1.0, direction='horizontal')]]),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    drop_last=True,
    sampler=dict(shuffle=False),
    dataset=dict(dataset=dict(pipeline=fixed_views)))
'''


def test_two_tasks_give_the_metrics_of_one_process(slurm_cluster, tmp_path,
                                                   job_env, capsys):
    """A job of 2 tasks (srun --ntasks=2, gloo) trains and tests as one
    local process does."""
    config = write_config(tmp_path / 'digits_ddp.py', CONFIG, DDP_CONFIG)
    assert protocol(tmp_path / 'two', *cpu_slurm(slurm_cluster, 2),
                    configs=(config, ), splits=('0', ),
                    options=TINY + ['train_dataloader.batch_size=4']) == 0
    job = read_state(tmp_path / 'two', 'split0_seed0', 'digits_ddp')['job_id']
    # Meanwhile, one process here.
    assert protocol(tmp_path / 'one', configs=(config, ), splits=('0', ),
                    options=TINY + ['train_dataloader.batch_size=8']) == 0
    slurm_cluster.wait_for_jobs([job], JOB_TIMEOUT)
    work_dir = osp.join(tmp_path, 'two', 'digits_ddp', 'split0_seed0')
    state = read_state(tmp_path / 'two', 'split0_seed0', 'digits_ddp')
    assert state['status'] == 'done', explain(slurm_cluster, work_dir)
    with open(state['log']) as f:
        log = f.read()
    assert log.count('$ srun --ntasks=2 --cpus-per-task=1 ') == 2
    metrics = []
    for name in ('one', 'two'):
        path = osp.join(tmp_path, name, 'digits_ddp', 'split0_seed0',
                        'osr_metrics.json')
        with open(path) as f:
            report = json.load(f)
        provenance = report.pop('provenance')
        metrics.append(report)
    assert provenance['world_size'] == 2
    assert metrics[0].keys() == metrics[1].keys() and metrics[0]
    for key, value in metrics[0].items():
        assert metrics[1][key] == pytest.approx(value, abs=1e-3), key


def test_stages_are_chained_with_afterok(slurm_cluster, tmp_path, job_env,
                                         capsys):
    """The reference's two-stage digits recipe: stage 2 waits for stage 1
    (afterok); a cancelled stage 1 takes stage 2 with it, and the rerun
    submits both again."""
    recipe = ('ref_digits_stage1_simclr_gradmix_resnet18+'
              'ref_digits_stage2_supcon_simclr_gradmix_resnet18')

    def submit():
        assert protocol(tmp_path, *cpu_slurm(slurm_cluster),
                        configs=(STAGE1, STAGE2), splits=('0', )) == 0
        return read_state(tmp_path, 'split0_seed0', recipe)['job_ids']

    def dependency(job):
        return slurm_cluster.client('squeue', '--noheader', f'--jobs={job}',
                                    '--format=%E').stdout.strip()

    jobs = submit()
    assert dependency(jobs['2']).startswith(f'afterok:{jobs["1"]}')
    slurm_cluster.client('scancel', jobs['1'])
    # SLURM removes stage 2, whose dependency can no longer be satisfied.
    slurm_cluster.wait_for_jobs(list(jobs.values()), JOB_TIMEOUT)
    capsys.readouterr()

    jobs = submit()
    assert dependency(jobs['2']).startswith(f'afterok:{jobs["1"]}')
    out = capsys.readouterr().out
    assert (f'split 0 seed 0 stage 2 of 2: submitted job {jobs["2"]} after '
            f'job {jobs["1"]}') in out
    slurm_cluster.wait_for_jobs(list(jobs.values()), JOB_TIMEOUT)
    run = run_protocol.ProtocolRun(
        osp.join(tmp_path, recipe), 0, 0, recipe.split('+'))
    state = run.read_state()
    assert state['status'] == 'done', explain(slurm_cluster, run.work_dir)
    assert state['trained_stages'] == 2
    for job in jobs.values():
        assert osp.exists(osp.join(run.work_dir, f'slurm-{job}.out'))
    with open(run.log_path) as f:
        assert f'load_from={run.final_checkpoint(0)}' in f.read()
    assert protocol(tmp_path, '--summarize-only', configs=(STAGE1, STAGE2),
                    splits=('0', )) == 0
