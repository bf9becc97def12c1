"""tools/run_protocol.py on the digits config: 2 splits x 1 seed of a tiny
network for one epoch, rerun, resume, SLURM through fake sbatch/srun, Ctrl-C
and bad inputs."""
import csv
import importlib
import json
import os
import os.path as osp
import shutil
import signal
import stat
import sys
import threading
import time
from unittest import mock

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools')
if TOOLS not in sys.path:
    sys.path.append(TOOLS)  # last: tools/test.py must not shadow `test`
run_protocol = importlib.import_module('run_protocol')
summarize_osr = importlib.import_module('summarize_osr')

CONFIG = osp.join(REPO, 'configs', 'gradmix_resnet18_digits.py')
NAME = 'gradmix_resnet18_digits'
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


def protocol(work_root, *extra, splits=('0', '1'), options=TINY):
    return run_protocol.main([
        CONFIG, '--splits', *splits, '--seeds', '0', '--work-root',
        str(work_root), *extra, '--cfg-options', *options
    ])


def read_state(root, name):
    with open(osp.join(root, NAME, name, 'state.json')) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def work_root(tmp_path_factory):
    """Both runs trained and tested, two at a time (``--gpus 2``)."""
    root = tmp_path_factory.mktemp('protocol')
    with mock.patch.dict(os.environ, THREADS):
        assert protocol(root, '--gpus', '2') == 0
    return str(root)


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


def test_slurm_resumes_an_interrupted_run(work_root, tmp_path, monkeypatch):
    root = tmp_path / 'root'
    shutil.copytree(work_root, root)
    run_dir = root / NAME / 'split1_seed0'
    # Split 1 was killed while training, after its checkpoint was saved.
    (run_dir / 'last_checkpoint').write_text(str(run_dir / 'epoch_1.pth'))
    (run_dir / 'osr_metrics.json').unlink()
    state = json.loads((run_dir / 'state.json').read_text())
    state.update(status='training', trained=False)
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
