"""tools/run_protocol.py on the digits config: 2 splits x 1 seed of a tiny
network for one epoch, rerun, resume, the reference's two-stage digits
recipe, SLURM through stand-in sbatch/srun/squeue scripts, Ctrl-C, a killed
runner and bad inputs. The same tool against a real SLURM cluster:
``slurm/test_run_protocol_slurm.py``.

The stand-in scripts stay for what a real cluster cannot show
deterministically or at all: the GPU resources of a job (``--gres``, no GPU
here), a job that stays queued, and the command lines themselves."""
import csv
import importlib
import json
import os
import os.path as osp
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from unittest import mock

import pytest
import torch
from protocol_helpers import (
    CONFIG,
    NAME,
    STAGE1,
    STAGE2,
    THREADS,
    TOOLS,
    protocol,
    read_state,
    run_protocol,
    write_config,
)

from gradmix_plugin.utils import load_checkpoint_file

summarize_osr = importlib.import_module('summarize_osr')

@pytest.fixture(scope='module')
def work_root(tmp_path_factory):
    """Both runs trained and tested, two at a time (``--gpus 2``)."""
    root = tmp_path_factory.mktemp('protocol')
    with mock.patch.dict(os.environ, THREADS):
        assert protocol(root, '--gpus', '2') == 0
    return str(root)


@pytest.mark.slow
def test_every_run_trains_tests_and_is_skipped_on_rerun(work_root, capsys):
    states = [read_state(work_root, f'split{k}_seed0') for k in (0, 1)]
    assert [s['status'] for s in states] == ['done', 'done']
    # One GPU each, at the same time.
    assert sorted(s['gpu'] for s in states) == ['0', '1']
    command = states[0]['command']  # the last one: the test
    assert command[2] == osp.join(TOOLS, 'test.py')
    assert command[-2:] == ['osr_split=0', 'randomness.seed=0']
    with open(states[0]['log']) as f:
        log = f.read()
    assert log.count('$ ') == 2 and 'tools/train.py' in log
    for kind in ('md', 'csv', 'tex', 'png'):
        assert osp.exists(osp.join(work_root, NAME, f'summary.{kind}'))

    assert protocol(work_root) == 0
    out = capsys.readouterr().out
    assert '2 runs, 2 done, 0 to run' in out
    assert 'training' not in out
    assert read_state(work_root, 'split0_seed0') == states[0]


@pytest.mark.slow
def test_summary_equals_summarize_osr(work_root, tmp_path):
    root = osp.join(work_root, NAME)
    csv_path = str(tmp_path / 'direct.csv')
    summarize_osr.main(
        [osp.join(root, f'split{k}_seed0') for k in (0, 1)] +
        ['--csv', csv_path])
    with open(csv_path) as f:
        direct = list(csv.DictReader(f))
    with open(osp.join(root, 'summary.csv')) as f:
        assert list(csv.DictReader(f)) == direct
    # Per split and overall, from the provenance of the metrics files.
    groups = {row['group'] for row in direct}
    assert groups == {'all', 'split 0', 'split 1'}
    with open(osp.join(root, 'summary.md')) as f:
        assert '| split 1 | class_knn |' in f.read()


def write_fake_slurm(bin_dir, calls):
    """``sbatch`` runs the job script here (``SLURM_JOB_ID=4242``) and
    prints the id; ``srun`` runs its command as one local process (without
    ``--launcher slurm``); both record their arguments in ``calls``."""
    scripts = dict(
        sbatch=f"""#!/usr/bin/env bash
echo "sbatch $*" >> {calls}
for arg in "$@"; do script="$arg"; done
SLURM_JOB_ID=4242 bash "$script" > "$(dirname "$script")/slurm-4242.out" 2>&1
echo 4242
""",
        srun=f"""#!/usr/bin/env bash
echo "srun $*" >> {calls}
while [[ "$1" == --* ]]; do shift; done
command=()
while (( $# )); do
  if [[ "$1" == --launcher ]]; then shift 2; continue; fi
  command+=("$1"); shift
done
exec "${{command[@]}}"
""")
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.slow
def test_slurm_resumes_an_interrupted_run(work_root, tmp_path, monkeypatch):
    root = tmp_path / 'root'
    shutil.copytree(work_root, root)
    run_dir = root / NAME / 'split1_seed0'
    # Split 1 was killed while training, after its checkpoint was saved.
    (run_dir / 'last_checkpoint').write_text(str(run_dir / 'epoch_1.pth'))
    (run_dir / 'osr_metrics.json').unlink()
    state = json.loads((run_dir / 'state.json').read_text())
    state.update(status='training', trained=False, trained_stages=0)
    (run_dir / 'state.json').write_text(json.dumps(state))
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    calls = tmp_path / 'calls.txt'
    write_fake_slurm(bin_dir, calls)
    monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    for key, value in THREADS.items():
        monkeypatch.setenv(key, value)

    assert protocol(root, '--launcher', 'slurm', '--partition', 'debug',
                    '--gpus-per-job', '2', '--cpus-per-task', '3') == 0
    sbatch, srun_train, srun_test = calls.read_text().splitlines()
    # Only the unfinished run is submitted, with slurm_train.sh's resources.
    assert f'--job-name={NAME}_split1_seed0 --partition=debug --ntasks=2 ' \
        '--ntasks-per-node=2 --gres=gpu:2 --cpus-per-task=3' in sbatch
    assert sbatch.endswith(str(run_dir / 'job.sh'))
    for srun in (srun_train, srun_test):
        assert srun.startswith('srun --ntasks=2 --ntasks-per-node=2 '
                               '--gres=gpu:2 --cpus-per-task=3 '
                               '--kill-on-bad-exit=1 ')
        assert srun.endswith('randomness.seed=0 --launcher slurm')
    assert 'tools/train.py' in srun_train and '--resume' in srun_train
    assert 'tools/test.py' in srun_test
    state = read_state(root, 'split1_seed0')
    assert state['status'] == 'done' and state['job_id'] == '4242'
    with open(state['log']) as f:
        assert 'resumed epoch: 1' in f.read()
    assert protocol(root, '--summarize-only') == 0


@pytest.mark.slow
def test_ctrl_c_terminates_the_tool_and_marks_the_run(tmp_path, monkeypatch):
    pid_file = tmp_path / 'pid'
    sleeper = [
        sys.executable, '-c',
        'import os, time; '
        f'open({str(pid_file)!r}, "w").write(str(os.getpid())); '
        'time.sleep(60)'
    ]
    monkeypatch.setattr(run_protocol, 'tool_command',
                        lambda *args, **kwargs: sleeper)
    args = run_protocol.parse_args(
        [CONFIG, '--splits', '0', '--work-root', str(tmp_path)])
    run = run_protocol.ProtocolRun(str(tmp_path), 0, 0)

    def press_ctrl_c():
        while not pid_file.exists() or not pid_file.read_text():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    assert run_protocol.run_all([run], args) is False
    state = run.read_state()
    assert state['status'] == 'interrupted'
    assert state['interrupted_in'] == 'training'
    assert not osp.exists(f'/proc/{pid_file.read_text()}')


def test_failed_run_is_reported_with_its_log(tmp_path, monkeypatch, capsys):
    failing = [sys.executable, '-c', 'print("out of memory"); exit(3)']
    monkeypatch.setattr(run_protocol, 'tool_command',
                        lambda *args, **kwargs: failing)
    assert protocol(tmp_path, splits=('2', )) == 1
    out = capsys.readouterr().out
    log = osp.join(tmp_path, NAME, 'split2_seed0', 'protocol.log')
    assert f'split 2 seed 0: FAILED while training (exit 3); log: {log}' \
        in out
    assert f'missing: split 2 seed 0 (failed, log: {log})' in out
    assert '    out of memory' in out
    assert read_state(tmp_path, 'split2_seed0')['returncode'] == 3


@pytest.mark.slow
def test_summary_names_the_missing_runs(work_root, capsys):
    assert protocol(work_root, '--summarize-only',
                    splits=('0', '1', '4')) == 1
    out = capsys.readouterr().out
    assert 'missing: split 4 seed 0 (pending)' in out
    assert 'over 2 runs' in out


def test_dry_run_prints_and_writes_nothing(tmp_path, capsys):
    assert protocol(tmp_path, '--dry-run', '--launcher', 'slurm',
                    '--partition', 'gpu') == 0
    out = capsys.readouterr().out
    assert out.count('sbatch --parsable') == 2
    assert '--in-job' in out
    # Without --splits: every split of the protocol.
    assert run_protocol.main(
        [CONFIG, '--work-root', str(tmp_path), '--dry-run']) == 0
    out = capsys.readouterr().out
    assert '5 runs, 0 done, 5 to run' in out
    assert out.count('tools/train.py') == 5
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    'argv, message',
    [(['--splits', '5'],
      "--splits: OSR split index 5 for protocol 'digits' is outside 0..4"),
     (['--cfg-options', 'osr_split=2'], "--cfg-options sets \\['osr_split'"),
     (['--cfg-options', 'randomness.seed=1'], 'randomness.seed of every run')])
def test_bad_inputs_are_refused_before_training(tmp_path, argv, message):
    with pytest.raises(run_protocol.ProtocolError, match=message):
        run_protocol.main([CONFIG, '--work-root', str(tmp_path), *argv])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('argv', [
    ['--splits', '0', '0'],
    ['--launcher', 'slurm'],
    ['--gpus', '0'],
])
def test_bad_options_exit(tmp_path, argv):
    with pytest.raises(SystemExit):
        run_protocol.parse_args([CONFIG, *argv])


@pytest.mark.slow
def test_work_root_of_another_config_is_refused(work_root):
    # The runs there were made with TINY; the full config is another one.
    with pytest.raises(run_protocol.ProtocolError,
                       match=f'{work_root}/{NAME} holds runs of {CONFIG} '
                       'with --cfg-options'):
        protocol(work_root, options=['train_cfg.max_epochs=2'])


def test_gpu_slots_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv('CUDA_VISIBLE_DEVICES', raising=False)
    assert run_protocol.gpu_slots(None) == [None]
    assert run_protocol.gpu_slots(2) == ['0', '1']
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '3,5')
    assert run_protocol.gpu_slots(2) == ['3', '5']
    with pytest.raises(run_protocol.ProtocolError,
                       match='--gpus 3, but CUDA_VISIBLE_DEVICES=3,5 lists 2'):
        run_protocol.gpu_slots(3)


def test_slurm_job_still_queued_is_not_submitted_again(
        tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    calls = tmp_path / 'calls.txt'
    write_fake_slurm(bin_dir, calls)
    squeue = bin_dir / 'squeue'
    squeue.write_text('#!/usr/bin/env bash\n'
                      '[[ "$*" == *--jobs=77* ]] && echo PENDING\n'
                      'exit 0\n')
    squeue.chmod(squeue.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    work_root = tmp_path / 'root'
    for split, job_id in ((0, '77'), (1, '78')):
        run_protocol.ProtocolRun(str(work_root / NAME), split, 0).update_state(
            status='submitted', job_id=job_id)
    assert protocol(work_root, '--launcher', 'slurm', '--partition', 'p',
                    '--dry-run') == 0
    out = capsys.readouterr().out
    # Job 77 is queued; job 78 is gone (finished or cancelled): resubmitted.
    assert 'split 0 seed 0: job 77 still queued or running' in out
    assert out.count('sbatch --parsable') == 1
    assert '--job-name=gradmix_resnet18_digits_split1_seed0' in out
    assert not calls.exists()


def process_gone(pid):
    """Whether ``pid`` has exited (a zombie left to its reaper counts)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] in 'ZX'
    except FileNotFoundError:
        return True


@pytest.mark.slow
@pytest.mark.skipif(
    not sys.platform.startswith('linux'), reason='parent-death signal')
def test_killed_runner_takes_its_tool_with_it(tmp_path):
    """SIGKILL gives the runner no chance to stop its tools: the kernel
    must (a parent-death signal), or a rerun trains twice in one folder."""
    pid_file = tmp_path / 'pid'
    driver = (
        'import sys\n'
        f'sys.path.append({TOOLS!r})\n'
        'import run_protocol\n'
        'sleeper = [sys.executable, "-c", "import os, time; '
        f'open({str(pid_file)!r}, \'w\').write(str(os.getpid())); '
        'time.sleep(120)"]\n'
        'run_protocol.tool_command = lambda *args, **kwargs: sleeper\n'
        f'run_protocol.main([{CONFIG!r}, "--splits", "0", "--work-root", '
        f'{str(tmp_path)!r}])\n')
    runner = subprocess.Popen([sys.executable, '-c', driver])
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists() or not pid_file.read_text():
            assert runner.poll() is None, 'the runner exited early'
            assert time.monotonic() < deadline, 'the tool never started'
            time.sleep(0.05)
        tool = int(pid_file.read_text())
        runner.kill()
        runner.wait()
        deadline = time.monotonic() + 10
        while not process_gone(tool) and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = not process_gone(tool)
        if alive:
            os.kill(tool, signal.SIGKILL)
        assert not alive, 'the tool outlived its SIGKILLed runner'
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def parameters(state_dict):
    """The learned tensors of a state dict (BatchNorm statistics left
    out: they move in training mode even with lr 0)."""
    return {
        key: value
        for key, value in state_dict.items()
        if not key.endswith(('running_mean', 'running_var',
                             'num_batches_tracked'))
    }


@pytest.mark.slow
def test_two_stage_recipe_chains_its_stages(tmp_path, capsys, monkeypatch):
    """The reference's two-stage digits recipe, stage 2 with lr 0: its
    weights can only be stage 1's if it started from them; its Adam state
    counts its own steps only (a fresh optimizer)."""
    for key, value in THREADS.items():
        monkeypatch.setenv(key, value)
    stage2 = write_config(tmp_path / 'stage2_lr0.py', STAGE2,
                          'optim_wrapper = dict(optimizer=dict(lr=0.0))\n')
    configs = (STAGE1, stage2)
    recipe = 'ref_digits_stage1_simclr_gradmix_resnet18+stage2_lr0'
    root = tmp_path / 'runs'
    assert protocol(root, configs=configs, splits=('0', )) == 0
    out = capsys.readouterr().out
    assert 'split 0 seed 0: training stage 1 of 2' in out
    assert 'split 0 seed 0: training stage 2 of 2' in out
    assert f'{recipe}: open-set metrics (%), mean ± std over 1 runs ' \
        '(stage 2)' in out
    run = run_protocol.ProtocolRun(
        str(root / recipe), 0, 0,
        ['ref_digits_stage1_simclr_gradmix_resnet18', 'stage2_lr0'])
    state = run.read_state()
    assert state['status'] == 'done' and state['trained_stages'] == 2
    assert state['command'][3] == stage2  # the last step: test stage 2
    first = run.final_checkpoint(0)
    assert osp.dirname(first) == run.stage_dirs[0]
    with open(run.log_path) as f:
        log = f.read()
    assert f'load_from={first}' in log
    stage1 = load_checkpoint_file(first)
    last = load_checkpoint_file(run.final_checkpoint())
    # Stage 2 starts from stage 1's weights (lr 0 keeps them) ...
    expected = parameters(stage1['state_dict'])
    assert parameters(last['state_dict']).keys() == expected.keys()
    for key, value in parameters(last['state_dict']).items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0,
                                   msg=key)
    # ... with a fresh optimizer, schedule and loop: Adam's step counts
    # and the iteration are stage 2's alone, not stage 1's + stage 2's.
    assert last['meta']['epoch'] == 1
    assert last['meta']['iter'] == stage1['meta']['iter'] > 0
    steps = {
        int(s['step']) for s in last['optimizer']['state'].values()
    }
    assert steps == {last['meta']['iter']}
    assert osp.exists(run.metrics_path)

    # Rerun: nothing trains.
    assert protocol(root, configs=configs, splits=('0', )) == 0
    out = capsys.readouterr().out
    assert '1 runs, 1 done, 0 to run' in out and 'training' not in out

    # Stage 2 interrupted (after its checkpoint): the rerun resumes stage 2
    # only, from its own checkpoint, not from stage 1's.
    os.remove(run.metrics_path)
    run.update_state(status='interrupted', trained_stages=1, trained=False)
    assert protocol(root, configs=configs, splits=('0', )) == 0
    out = capsys.readouterr().out
    assert 'training stage 1' not in out
    assert 'split 0 seed 0: training stage 2 of 2' in out
    state = run.read_state()
    assert state['status'] == 'done'
    with open(run.log_path) as f:
        resumed = f.read()[len(log):]
    train, test = [line for line in resumed.splitlines() if line[:2] == '$ ']
    assert '--resume' in train and 'load_from=' not in train
    assert 'tools/test.py' in test
    assert 'resumed epoch: 1' in resumed


def test_dry_run_shows_the_chain_of_stages(tmp_path, capsys):
    assert protocol(tmp_path, '--dry-run', configs=(STAGE1, STAGE2),
                    splits=('0', )) == 0
    out = capsys.readouterr().out
    assert 'stage 1 (ref_digits_stage1_simclr_gradmix_resnet18):' in out
    assert 'stage 2 (ref_digits_stage2_supcon_simclr_gradmix_resnet18):' \
        in out
    assert "'load_from=<last checkpoint of stage 1>'" in out
    assert 'test stage 2:' in out and out.count('tools/train.py') == 2

    assert protocol(tmp_path, '--dry-run', '--launcher', 'slurm',
                    '--partition', 'cpu', '--gpus-per-job', '0',
                    configs=(STAGE1, STAGE2), splits=('0', )) == 0
    out = capsys.readouterr().out
    assert out.count('sbatch --parsable') == 2
    assert "'--dependency=afterok:<job of stage 1>' " \
        '--kill-on-invalid-dep=yes' in out
    assert '--job-stage 1' in out and '--job-stage 2' in out
    assert os.listdir(tmp_path) == []


def test_cpu_slurm_jobs_ask_for_tasks_not_gpus(tmp_path, capsys):
    assert protocol(tmp_path, '--dry-run', '--launcher', 'slurm',
                    '--partition', 'cpu', '--gpus-per-job', '0', '--ntasks',
                    '2', '--cpus-per-task', '1', splits=('0', )) == 0
    out = capsys.readouterr().out
    assert '--partition=cpu --ntasks=2 --cpus-per-task=1 --output=' in out
    assert '--gres' not in out and '--ntasks-per-node' not in out
    # The job runs this tool with the same resources, srun too.
    assert '--gpus-per-job 0 --ntasks 2 --cpus-per-task 1 --in-job' in out
    args = run_protocol.parse_args([
        CONFIG, '--launcher', 'slurm', '--gpus-per-job', '0', '--ntasks',
        '2', '--cpus-per-task', '1', '--in-job'
    ])
    run = run_protocol.ProtocolRun(str(tmp_path), 0, 0)
    srun = run_protocol.tool_command('train', run, args)
    assert srun[:4] == [
        'srun', '--ntasks=2', '--cpus-per-task=1', '--kill-on-bad-exit=1'
    ]
    assert srun[-2:] == ['--launcher', 'slurm']


@pytest.mark.parametrize('argv, message', [
    (['--partition', 'p'], '--partition is a SLURM option; add --launcher '
     'slurm'),
    (['--launcher', 'slurm', '--partition', 'p', '--gpus-per-job', '-1'],
     '--gpus-per-job must be at least 0 (0: CPU tasks), got -1'),
    (['--launcher', 'slurm', '--partition', 'p', '--gpus-per-job', '0',
      '--gpus-per-node', '4'],
     '--gpus-per-node 4 with --gpus-per-job 0 (CPU tasks): drop one'),
    (['--launcher', 'slurm', '--partition', 'p', '--ntasks', '2'],
     '--ntasks 2 without --gpus-per-job: give --gpus-per-job 2'),
    (['--launcher', 'slurm', '--partition', 'p', '--gpus-per-job', '2',
      '--ntasks', '4'], '--ntasks 4 with --gpus-per-job 2: on GPUs every '
     'task has one GPU'),
])
def test_slurm_options_that_cannot_take_effect_are_refused(
        argv, message, capsys):
    with pytest.raises(SystemExit):
        run_protocol.parse_args([CONFIG, *argv])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize('configs, options, message', [
    ((STAGE1, STAGE2), ['load_from=x.pth'],
     "--cfg-options sets \\['load_from'\\] for all 2 stages"),
    ((osp.join(osp.dirname(CONFIG), 'gradmix_resnet18_cifar10.py'), STAGE2),
     [], "the stages have different OSR protocols: .*\\('cifar10'\\), "
     ".*\\('digits'\\)"),
])
def test_stages_that_cannot_chain_are_refused(tmp_path, configs, options,
                                              message):
    with pytest.raises(run_protocol.ProtocolError, match=message):
        run_protocol.main([
            *configs, '--work-root',
            str(tmp_path), '--dry-run', '--cfg-options', 'val_cfg=None',
            *options
        ])
    assert os.listdir(tmp_path) == []


def test_stage_job_without_its_previous_stage_fails(tmp_path, capsys):
    """A stage's job that finds the previous stage untrained (resubmitted
    by hand) fails instead of training from scratch."""
    assert run_protocol.main([
        STAGE1, STAGE2, '--splits', '0', '--work-root',
        str(tmp_path), '--launcher', 'slurm', '--gpus-per-job', '0',
        '--in-job', '--job-stage', '2'
    ]) == 1
    assert ('split 0 seed 0 stage 2 of 2: stage 1 is not trained; run the '
            'same command again to submit the stages left'
            ) in capsys.readouterr().out
    recipe = ('ref_digits_stage1_simclr_gradmix_resnet18+'
              'ref_digits_stage2_supcon_simclr_gradmix_resnet18')
    assert read_state(tmp_path, 'split0_seed0', recipe)['status'] == 'failed'


def test_cpu_tasks_get_a_port_and_their_cpus_as_threads(
        tmp_path, monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.delenv('MASTER_PORT', raising=False)
    args = run_protocol.parse_args([
        CONFIG, '--launcher', 'slurm', '--gpus-per-job', '0',
        '--cpus-per-task', '3', '--in-job'
    ])
    run = run_protocol.ProtocolRun(str(tmp_path), 0, 0)
    show = [
        sys.executable, '-c', 'import os; print("threads", '
        'os.environ["OMP_NUM_THREADS"], "port", os.environ["MASTER_PORT"])'
    ]
    executor = run_protocol.Executor(args)
    assert executor.step(run, 'training', show, dict(os.environ))
    with open(run.log_path) as f:
        words = f.read().split()
    assert words[words.index('threads') + 1] == '3'
    assert 1024 <= int(words[words.index('port') + 1]) < 65536
    # What the user exported wins.
    assert executor.step(run, 'training', show,
                         dict(os.environ, OMP_NUM_THREADS='2'))
    with open(run.log_path) as f:
        words = f.read().split()
    assert words[len(words) - 1 - words[::-1].index('threads') + 1] == '2'
