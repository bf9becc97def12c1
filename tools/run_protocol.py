"""Run an open-set protocol: train and test every (split, seed), summarise.

Every run gets its own work dir ``<work-root>/<config name>/split<k>_seed<s>``
and is trained by ``tools/train.py`` (``--cfg-options osr_split=k
randomness.seed=s``), then tested by ``tools/test.py`` on the checkpoint
named by ``last_checkpoint``, both as subprocesses whose output goes to
``protocol.log`` in the work dir. A ``state.json`` there records the state
of the run (pending, submitted, training, testing, done, failed or
interrupted). Running the same command again skips finished runs and
resumes the others (``tools/train.py --resume``); Ctrl-C terminates the
running tools and marks their runs interrupted.

At the end (or with ``--summarize-only``) the mean ± std over all runs and
per split of every score and metric is written next to the runs as
``summary.md``, ``summary.csv``, ``summary.tex`` and ``summary.png`` by the
code of ``gradmix_plugin.evaluation.summary`` (as ``tools/summarize_osr.py``).

Examples:
    python tools/run_protocol.py configs/gradmix_resnet18_cifar10.py \
        --splits 0 1 2 3 4 --seeds 0 1 --gpus 4
    python tools/run_protocol.py configs/gradmix_resnet18_cifar10.py \
        --splits 0 1 2 3 4 --launcher slurm --partition gpu \
        --gpus-per-job 1 --dry-run
"""
import argparse
import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import os
import os.path as osp
import queue
import shlex
import signal
import subprocess
import sys
import threading
from datetime import datetime, timezone
from typing import Dict, Iterator, List, Optional, Sequence, Union

from mmengine.config import Config, DictAction

from gradmix_plugin.datasets.osr_splits import (
    NUM_SPLITS,
    get_osr_protocol,
    get_osr_split,
)
from gradmix_plugin.evaluation import METRICS_FILENAME
from gradmix_plugin.evaluation.summary import (
    ALL_RUNS,
    SummaryError,
    check_runs,
    describe_runs,
    format_summary,
    read_run,
    summarize_groups,
    write_summary,
)
from gradmix_plugin.utils import iter_dicts

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
STATE_FILENAME = 'state.json'
LOG_FILENAME = 'protocol.log'
#: Written into ``<work-root>/<config name>``: the config its runs use.
RECORD_FILENAME = 'protocol.json'
#: Config keys the runner sets for every run.
RUN_KEYS = ('osr_split', 'randomness', 'randomness.seed')
#: Run states that a job may still be working on.
ACTIVE = ('submitted', 'training', 'testing')
#: Exit codes of a tool stopped by SIGINT or SIGTERM.
INTERRUPTED_CODES = (-signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGINT,
                     128 + signal.SIGTERM)


class ProtocolError(Exception):
    """The protocol cannot be run as asked."""


class ProtocolRun:
    """One (split, seed) of the protocol and its work dir.

    Args:
        root (str): ``<work-root>/<config name>``.
        split (int | str): OSR split index (or SSB split name).
        seed (int): Random seed.
    """

    def __init__(self, root: str, split: Union[int, str], seed: int):
        self.split = split
        self.seed = seed
        self.name = f'split{split}_seed{seed}'
        self.work_dir = osp.join(root, self.name)
        self.log_path = osp.join(self.work_dir, LOG_FILENAME)
        self.metrics_path = osp.join(self.work_dir, METRICS_FILENAME)

    def __str__(self) -> str:
        return f'split {self.split} seed {self.seed}'

    def read_state(self) -> dict:
        """The recorded state (``status`` 'pending' if none)."""
        path = osp.join(self.work_dir, STATE_FILENAME)
        if not osp.exists(path):
            return dict(status='pending')
        with open(path) as f:
            return json.load(f)

    def update_state(self, **changes) -> dict:
        """Merge ``changes`` into the state file (written atomically)."""
        state = self.read_state()
        state.update(
            changes,
            split=self.split,
            seed=self.seed,
            log=self.log_path,
            updated=datetime.now(timezone.utc).isoformat(timespec='seconds'))
        os.makedirs(self.work_dir, exist_ok=True)
        path = osp.join(self.work_dir, STATE_FILENAME)
        with open(path + '.tmp', 'w') as f:
            json.dump(state, f, indent=2)
        os.replace(path + '.tmp', path)
        return state

    def is_done(self) -> bool:
        return (self.read_state()['status'] == 'done'
                and osp.exists(self.metrics_path))

    def final_checkpoint(self) -> str:
        """The checkpoint ``last_checkpoint`` names (written by mmengine's
        ``CheckpointHook``)."""
        path = osp.join(self.work_dir, 'last_checkpoint')
        if not osp.exists(path):
            raise ProtocolError(
                f'{self}: training ended without a checkpoint (no {path}); '
                f'see {self.log_path}')
        with open(path) as f:
            return f.read().strip()


def split_value(text: str) -> Union[int, str]:
    """A ``--splits`` value: an index, or a split name (SSB)."""
    return int(text) if text.lstrip('-').isdigit() else text


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train and test every (split, seed) of an open-set '
        'protocol, then summarise mean ± std')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--splits',
        nargs='+',
        type=split_value,
        help="OSR split indices (or the SSB difficulties 'easy', 'hard'); "
        'default: every split of the protocol')
    parser.add_argument(
        '--seeds', nargs='+', type=int, default=[0], help='random seeds')
    parser.add_argument(
        '--work-root',
        default='work_dirs',
        help='runs go to WORK_ROOT/<config name>/split<k>_seed<s>')
    parser.add_argument(
        '--gpus',
        type=int,
        help='run up to this many runs at once, one GPU each '
        '(CUDA_VISIBLE_DEVICES); default: one run at a time on what is '
        'visible')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='config overrides given to tools/train.py and tools/test.py '
        '(not osr_split or randomness.seed, which the runner sets)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'slurm'],
        default='none',
        help="'slurm' submits one sbatch job per run, which trains and "
        "tests through srun as mmpretrain's tools/slurm_train.sh does")
    parser.add_argument('--partition', help='SLURM partition')
    parser.add_argument(
        '--gpus-per-job',
        type=int,
        default=1,
        help='SLURM tasks (one GPU each) per run. Defaults to 1')
    parser.add_argument(
        '--gpus-per-node',
        type=int,
        default=8,
        help='SLURM GPUs per node. Defaults to 8')
    parser.add_argument(
        '--cpus-per-task',
        type=int,
        default=5,
        help='SLURM CPUs per task. Defaults to 5')
    parser.add_argument(
        '--sbatch-args',
        default='',
        help='more sbatch options, e.g. "--time=48:00:00 --qos=normal"')
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='print the commands of the runs left to do, run nothing')
    parser.add_argument(
        '--summarize-only',
        action='store_true',
        help='only summarise the finished runs')
    # Set in the job script of a SLURM run: run it here, through srun.
    parser.add_argument(
        '--in-job', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ('splits', 'seeds'):
        values = getattr(args, name) or ()
        if len(set(values)) < len(values):
            parser.error(f'--{name} lists a value twice: {values}')
    if args.launcher == 'slurm':
        if args.partition is None and not args.in_job:
            parser.error('--launcher slurm needs --partition')
        if args.gpus is not None:
            parser.error('--gpus is for local runs; with --launcher slurm '
                         f'use --gpus-per-job (got --gpus {args.gpus})')
    for name in ('gpus', 'gpus_per_job', 'gpus_per_node', 'cpus_per_task'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1, '
                         f'got {value}')
    return args


def parse_cfg_options(options: Sequence[str]) -> Dict:
    """``KEY=VALUE`` overrides as mmengine's ``DictAction`` reads them."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    if not options:
        return {}
    return parser.parse_args(['--cfg-options', *options]).cfg_options


def load_config(args: argparse.Namespace) -> Config:
    """The config with the user's overrides, checked for the protocol;
    fills in ``args.splits`` (every split of the protocol) if not given.

    Raises:
        ProtocolError: If ``--cfg-options`` sets what the runner sets, the
            config has no OSR protocol, or a split is not one of it.
    """
    options = parse_cfg_options(args.cfg_options)
    taken = [key for key in options if key in RUN_KEYS]
    if taken:
        raise ProtocolError(
            f'--cfg-options sets {taken}; the runner sets osr_split and '
            'randomness.seed of every run from --splits and --seeds')
    cfg = Config.fromfile(args.config, import_custom_modules=False)
    cfg.merge_from_dict(options)
    protocols = {
        node['protocol']
        for node in iter_dicts(cfg._cfg_dict)
        if node.get('type') == 'OSRDataset' and node.get('protocol')
    }
    if len(protocols) != 1:
        raise ProtocolError(
            f'{args.config} has OSRDataset protocols {sorted(protocols)}; '
            'the runner needs a config of one protocol, whose split '
            'osr_split selects')
    protocol_name = protocols.pop()
    protocol = get_osr_protocol(protocol_name)
    if args.splits is None:
        args.splits = list(protocol.split_names or range(NUM_SPLITS))
    for split in args.splits:
        try:
            get_osr_split(protocol_name, split)
        except ValueError as error:
            raise ProtocolError(f'--splits: {error}') from None
    return cfg


def config_record(args: argparse.Namespace, cfg: Config) -> dict:
    """What ``protocol.json`` records: the config path, the SHA-256 of the
    resolved config (overrides merged) and the overrides."""
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=repr)
    return dict(
        config=osp.abspath(args.config),
        config_sha256=hashlib.sha256(text.encode()).hexdigest(),
        cfg_options=list(args.cfg_options))


def check_work_root(root: str, record: dict) -> None:
    """Refuse a work root whose runs come from another (resolved) config.

    Raises:
        ProtocolError: Naming both configs and their digests.
    """
    path = osp.join(root, RECORD_FILENAME)
    if not osp.exists(path):
        return
    with open(path) as f:
        found = json.load(f)
    if found['config_sha256'] != record['config_sha256']:
        raise ProtocolError(
            f'{root} holds runs of {found["config"]} with --cfg-options '
            f'{found["cfg_options"]} (config sha256 '
            f'{found["config_sha256"][:12]}), not of {record["config"]} '
            f'with --cfg-options {record["cfg_options"]} (sha256 '
            f'{record["config_sha256"][:12]}); choose another --work-root '
            'or remove that folder')


@contextlib.contextmanager
def locked(root: str) -> Iterator[None]:
    """Hold ``<root>/.lock`` so that two runners never share a work root.

    Raises:
        ProtocolError: If another runner holds it.
    """
    os.makedirs(root, exist_ok=True)
    with open(osp.join(root, '.lock'), 'w') as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ProtocolError(
                f'another tools/run_protocol.py is running in {root}; wait '
                'for it or stop it first') from None
        yield


def tool_command(tool: str, run: ProtocolRun, args: argparse.Namespace,
                 *tool_args: str) -> List[str]:
    """``tools/<tool>.py`` for one run, through ``srun`` in a SLURM job."""
    command = [
        sys.executable, '-u',
        osp.join(REPO, 'tools', f'{tool}.py'), args.config, *tool_args,
        '--work-dir', run.work_dir, '--cfg-options', *args.cfg_options,
        f'osr_split={run.split}', f'randomness.seed={run.seed}'
    ]
    if args.launcher != 'slurm':
        return command
    per_node = min(args.gpus_per_job, args.gpus_per_node)
    return [
        'srun', f'--ntasks={args.gpus_per_job}',
        f'--ntasks-per-node={per_node}', f'--gres=gpu:{per_node}',
        f'--cpus-per-task={args.cpus_per_task}', '--kill-on-bad-exit=1',
        *command, '--launcher', 'slurm'
    ]


def train_command(run: ProtocolRun, args: argparse.Namespace) -> List[str]:
    """Train, resuming when the work dir has a checkpoint."""
    resume = osp.exists(osp.join(run.work_dir, 'last_checkpoint'))
    return tool_command('train', run, args, *(['--resume'] if resume else []))


class Executor:
    """Runs the tools of the runs as subprocesses and stops them on Ctrl-C.

    Args:
        args (argparse.Namespace): The runner's arguments.
    """

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.stopping = threading.Event()
        self._children = set()
        self._lock = threading.Lock()

    def step(self, run: ProtocolRun, status: str, command: List[str],
             env: Dict[str, str]) -> bool:
        """Run one tool; record the run as ``status`` while it runs, and
        as failed or interrupted if it does not succeed."""
        run.update_state(status=status, command=command)
        print(f'{run}: {status} (log: {run.log_path})', flush=True)
        with open(run.log_path, 'a') as log:
            log.write(f'$ {shlex.join(command)}\n')
            log.flush()
            with self._lock:  # no new tool once stop() has begun
                child = None
                if not self.stopping.is_set():
                    child = subprocess.Popen(
                        command, env=env, stdout=log,
                        stderr=subprocess.STDOUT)
                    self._children.add(child)
            returncode = None if child is None else child.wait()
            with self._lock:
                self._children.discard(child)
        if returncode == 0:
            return True
        # A child stopped by a signal (Ctrl-C reaches the whole process
        # group, SLURM sends SIGTERM) is resumable, not failed.
        if self.stopping.is_set() or returncode in INTERRUPTED_CODES:
            run.update_state(status='interrupted', interrupted_in=status)
            print(f'{run}: interrupted while {status}', flush=True)
        else:
            run.update_state(
                status='failed', failed_in=status, returncode=returncode)
            print(
                f'{run}: FAILED while {status} (exit {returncode}); log: '
                f'{run.log_path}',
                flush=True)
        return False

    def execute(self, run: ProtocolRun, gpu: Optional[str] = None) -> None:
        """Train (or resume) and test one run, unless it is done."""
        if self.stopping.is_set() or run.is_done():
            return
        env = dict(os.environ)
        if gpu is not None:
            env['CUDA_VISIBLE_DEVICES'] = gpu
        os.makedirs(run.work_dir, exist_ok=True)
        run.update_state(gpu=gpu, job_id=os.environ.get('SLURM_JOB_ID'))
        if not run.read_state().get('trained'):
            if not self.step(run, 'training', train_command(run, self.args),
                             env):
                return
            run.update_state(trained=True)
        try:
            checkpoint = run.final_checkpoint()
        except ProtocolError as error:
            run.update_state(status='failed', failed_in='testing')
            print(error, flush=True)
            return
        if self.step(run, 'testing',
                     tool_command('test', run, self.args, checkpoint), env):
            run.update_state(status='done')
            print(f'{run}: done', flush=True)

    def stop(self) -> None:
        """Terminate the running tools (killed after 30 s)."""
        with self._lock:
            self.stopping.set()
            children = list(self._children)
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


def gpu_slots(gpus: Optional[int]) -> List[Optional[str]]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each parallel slot.

    Raises:
        ProtocolError: If ``CUDA_VISIBLE_DEVICES`` lists fewer than
            ``gpus`` devices.
    """
    if gpus is None:
        return [None]
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    devices = visible.split(',') if visible else [str(i) for i in range(gpus)]
    if len(devices) < gpus:
        raise ProtocolError(
            f'--gpus {gpus}, but CUDA_VISIBLE_DEVICES={visible} lists '
            f'{len(devices)} devices')
    return devices[:gpus]


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_all(runs: Sequence[ProtocolRun], args: argparse.Namespace) -> bool:
    """Run the runs, ``len(gpu_slots(args.gpus))`` at a time.

    Returns:
        bool: False if interrupted (Ctrl-C or SIGTERM).
    """
    slots = queue.Queue()
    for slot in gpu_slots(args.gpus):
        slots.put(slot)
    executor = Executor(args)

    def work(run):
        gpu = slots.get()
        try:
            executor.execute(run, gpu)
        finally:
            slots.put(gpu)

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    pool = concurrent.futures.ThreadPoolExecutor(slots.qsize())
    try:
        futures = [pool.submit(work, run) for run in runs]
        for future in futures:
            future.result()
        return True
    except KeyboardInterrupt:
        print('stopping: terminating the running tools', flush=True)
        executor.stop()
        return False
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        signal.signal(signal.SIGTERM, previous)


def job_script(run: ProtocolRun, args: argparse.Namespace) -> str:
    """The sbatch script of a run: this runner, in the job, for that run."""
    command = [
        sys.executable, '-u',
        osp.abspath(__file__), args.config, '--splits',
        str(run.split), '--seeds',
        str(run.seed), '--work-root', args.work_root, '--launcher', 'slurm',
        '--gpus-per-job',
        str(args.gpus_per_job), '--gpus-per-node',
        str(args.gpus_per_node), '--cpus-per-task',
        str(args.cpus_per_task), '--in-job'
    ]
    if args.cfg_options:
        command += ['--cfg-options', *args.cfg_options]
    return (f'#!/usr/bin/env bash\n# {run} of {args.config}: train, then '
            f'test through srun\ncd {shlex.quote(os.getcwd())}\n'
            f'exec {shlex.join(command)}\n')


def sbatch_command(run: ProtocolRun, args: argparse.Namespace,
                   config_name: str) -> List[str]:
    """The sbatch command of a run: the resources of mmpretrain's
    ``tools/slurm_train.sh``, the output next to the run."""
    per_node = min(args.gpus_per_job, args.gpus_per_node)
    return [
        'sbatch', '--parsable', f'--job-name={config_name}_{run.name}',
        f'--partition={args.partition}', f'--ntasks={args.gpus_per_job}',
        f'--ntasks-per-node={per_node}', f'--gres=gpu:{per_node}',
        f'--cpus-per-task={args.cpus_per_task}',
        f'--output={osp.join(run.work_dir, "slurm-%j.out")}',
        *shlex.split(args.sbatch_args),
        osp.join(run.work_dir, 'job.sh')
    ]


def slurm_job_active(job_id: Optional[str]) -> bool:
    """Whether ``squeue`` still lists the job (pending or running)."""
    if not job_id:
        return False
    try:
        result = subprocess.run(
            ['squeue', '--noheader', f'--jobs={job_id}', '--format=%T'],
            capture_output=True,
            text=True)
    except FileNotFoundError:
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


def submit(runs: Sequence[ProtocolRun], args: argparse.Namespace,
           config_name: str) -> None:
    """Submit one sbatch job per run (or print it with ``--dry-run``).

    Raises:
        ProtocolError: If sbatch fails, with its output.
    """
    for run in runs:
        command = sbatch_command(run, args, config_name)
        if args.dry_run:
            print(f'{run}:\n  {shlex.join(command)}\n  job.sh:\n    ' +
                  job_script(run, args).strip().replace('\n', '\n    '))
            continue
        os.makedirs(run.work_dir, exist_ok=True)
        with open(osp.join(run.work_dir, 'job.sh'), 'w') as f:
            f.write(job_script(run, args))
        run.update_state(status='submitted', job_id=None)
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            run.update_state(status='failed', failed_in='submitted')
            raise ProtocolError(
                f'{run}: {shlex.join(command)} failed (exit '
                f'{result.returncode}): {result.stderr.strip()}')
        job_id = result.stdout.strip().split(';')[0]
        run.update_state(job_id=job_id)
        print(f'{run}: submitted job {job_id} (log: {run.log_path})',
              flush=True)


def summarize_protocol(runs: Sequence[ProtocolRun], root: str,
                       config_name: str) -> bool:
    """Summarise the finished runs into ``<root>/summary.*``; list the
    missing ones with their state and log.

    Returns:
        bool: Whether every run is finished.
    """
    done, missing = [], []
    for run in runs:
        if not run.is_done():
            missing.append(run)
            continue
        result = read_run(run.metrics_path)
        if result.provenance is None:  # written by an older tools/test.py
            result = result._replace(split=run.split, seed=run.seed)
        elif (result.split, result.seed) != (run.split, run.seed):
            raise ProtocolError(
                f'{run.metrics_path} records split {result.split} seed '
                f'{result.seed}, not those of its work dir {run.work_dir}')
        done.append(result)
    if done:
        check_runs(done)
        groups = summarize_groups(done)
        title = (f'{config_name}: open-set metrics (%), mean ± std over '
                 f'{len(done)} runs')
        paths = {
            kind: osp.join(root, f'summary.{kind}')
            for kind in ('md', 'csv', 'tex', 'png')
        }
        write_summary(
            groups,
            markdown=paths['md'],
            csv_path=paths['csv'],
            latex=paths['tex'],
            plot=paths['png'],
            title=title)
        print(f'\n{title}:\n\n{format_summary(groups)}\n\n'
              f'{describe_runs(done)}')
        incomplete = [
            k for k, s in groups[ALL_RUNS].items() if s['n'] < len(done)
        ]
        if incomplete:
            print(f'note: {incomplete} are NaN in some runs and averaged '
                  'over the others')
        print('written: ' + ', '.join(paths.values()))
    else:
        print(f'nothing to summarise in {root}: no finished run')
    for run in missing:
        state = run.read_state()
        line = f'missing: {run} ({state["status"]}'
        if osp.exists(run.log_path):
            line += f', log: {run.log_path}'
        print(line + ')')
        if state['status'] == 'failed' and osp.exists(run.log_path):
            with open(run.log_path) as f:
                tail = f.readlines()[-5:]
            print(''.join('    ' + text for text in tail), end='')
    if missing:
        print(f'{len(missing)} of {len(runs)} runs missing from the summary')
    return not missing


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the protocol; returns the exit status (0: every run done, 1: some
    failed or missing, 130: interrupted)."""
    args = parse_args(argv)
    cfg = load_config(args)
    config_name = osp.splitext(osp.basename(args.config))[0]
    root = osp.abspath(osp.join(args.work_root, config_name))
    record = config_record(args, cfg)
    check_work_root(root, record)
    runs = [
        ProtocolRun(root, split, seed) for split in args.splits
        for seed in args.seeds
    ]
    if args.in_job:
        return 0 if run_all(runs, args) and runs[0].is_done() else 1
    if args.summarize_only:
        return 0 if summarize_protocol(runs, root, config_name) else 1
    todo = [run for run in runs if not run.is_done()]
    print(f'{config_name}: {len(runs)} runs, {len(runs) - len(todo)} done, '
          f'{len(todo)} to run in {root}')
    in_flight = []
    if args.launcher == 'slurm':
        in_flight = [
            run for run in todo
            if run.read_state()['status'] in ACTIVE
            and slurm_job_active(run.read_state().get('job_id'))
        ]
        for run in in_flight:
            print(f'{run}: job {run.read_state()["job_id"]} still queued or '
                  'running, not submitted again')
        todo = [run for run in todo if run not in in_flight]
    if args.dry_run:
        if args.launcher == 'slurm':
            submit(todo, args, config_name)
        else:
            for run in todo:
                test = tool_command('test', run, args,
                                    '<checkpoint in last_checkpoint>')
                print(f'{run}:\n  {shlex.join(train_command(run, args))}\n'
                      f'  {shlex.join(test)}')
        return 0
    with locked(root):
        with open(osp.join(root, RECORD_FILENAME), 'w') as f:
            json.dump(record, f, indent=2)
        if args.launcher == 'slurm' and (todo or in_flight):
            submit(todo, args, config_name)
            print('run the same command with --summarize-only once the '
                  'jobs are done')
            return 0
        if not run_all(todo, args):
            print('interrupted: run the same command again to resume')
            return 130
        return 0 if summarize_protocol(runs, root, config_name) else 1


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (ProtocolError, SummaryError) as error:
        sys.exit(f'error: {error}')
