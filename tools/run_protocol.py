"""Run an open-set protocol: train and test every (split, seed), summarise.

Every run gets its own work dir ``<work-root>/<config name>/split<k>_seed<s>``
and is trained by ``tools/train.py`` (``--cfg-options osr_split=k
randomness.seed=s``), then tested by ``tools/test.py`` on the checkpoint
named by ``last_checkpoint``, both as subprocesses whose output goes to
``protocol.log`` in the work dir. A ``state.json`` there records the state
of the run (pending, submitted, training, testing, done, failed or
interrupted). Running the same command again skips finished runs and
resumes the others (``tools/train.py --resume``); Ctrl-C terminates the
running tools and marks their runs interrupted. The tools die with the
runner, even when it is killed (a parent-death signal on Linux).

Several configs are the stages of a multi-stage recipe, run in order for
every (split, seed): stage k+1 starts from the last checkpoint of stage k
(``--cfg-options load_from=<checkpoint>``: the weights only, with a fresh
optimizer, schedule and epoch counter) and only the last stage is tested
and summarised. The stages of a run have their own work dirs
``split<k>_seed<s>/stage<i>_<config name>`` under
``<work-root>/<config names joined by '+'>``; every stage is resumable, and
a finished stage is never trained again.

With ``--launcher slurm`` every run (every stage) is one sbatch job that
runs this tool for that run through ``srun``; the stages of a run are
chained with ``--dependency=afterok``. ``--gpus-per-job 0`` asks for CPU
tasks (``--ntasks``, gloo) on partitions without GPUs.

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
    REF=configs/reference/ref_cifar10
    python tools/run_protocol.py ${REF}_stage1_simclr_gradmix_resnet18.py \
        ${REF}_stage2_supcon_simclr_gradmix_resnet18.py \
        --splits 0 1 2 3 4 --launcher slurm --partition cpu \
        --gpus-per-job 0 --ntasks 4 --cpus-per-task 8
"""
import argparse
import concurrent.futures
import contextlib
import ctypes
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
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Union

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
from gradmix_plugin.utils import free_port, iter_dicts

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
STATE_FILENAME = 'state.json'
LOG_FILENAME = 'protocol.log'
#: Written into ``<work-root>/<config name>``: the config its runs use.
RECORD_FILENAME = 'protocol.json'
#: Config keys the runner sets for every run.
RUN_KEYS = ('osr_split', 'randomness', 'randomness.seed')
#: Config keys the runner sets for every stage after the first.
STAGE_KEYS = ('load_from', 'resume')
#: Run states that a job may still be working on.
ACTIVE = ('submitted', 'training', 'testing')
#: Exit codes of a tool stopped by SIGINT or SIGTERM.
INTERRUPTED_CODES = (-signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGINT,
                     128 + signal.SIGTERM)
#: ``squeue`` states of a job that has ended (still listed for a while).
ENDED_JOB_STATES = ('BOOT_FAIL', 'CANCELLED', 'COMPLETED', 'DEADLINE',
                    'FAILED', 'NODE_FAIL', 'OUT_OF_MEMORY', 'PREEMPTED',
                    'TIMEOUT')
#: SLURM options and their defaults (those of mmpretrain's
#: ``tools/slurm_train.sh``); None: not given.
SLURM_DEFAULTS = dict(
    partition=None,
    gpus_per_job=1,
    ntasks=None,
    gpus_per_node=8,
    cpus_per_task=5,
    sbatch_args='')
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ProtocolError(Exception):
    """The protocol cannot be run as asked."""


def _load_prctl() -> Optional[Callable]:
    """libc's ``prctl`` (Linux), looked up once: a child calls it between
    fork and exec, where nothing may be imported."""
    if not sys.platform.startswith('linux'):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def die_with_parent() -> Optional[Callable[[], None]]:
    """A ``preexec_fn`` that makes the child die (SIGKILL) when the thread
    that starts it ends, the runner killed included; None where Linux's
    parent-death signal is not available."""
    if _PRCTL is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the runner died before prctl
            os._exit(1)

    return preexec


class ProtocolRun:
    """One (split, seed) of the protocol and its work dir.

    Args:
        root (str): ``<work-root>/<config name>``.
        split (int | str): OSR split index (or SSB split name).
        seed (int): Random seed.
        stages (Sequence[str]): The config names of the stages; one stage
            works in the run's work dir, several in
            ``<work dir>/stage<i>_<name>``. Defaults to one stage.
    """

    def __init__(self,
                 root: str,
                 split: Union[int, str],
                 seed: int,
                 stages: Sequence[str] = ('', )):
        self.split = split
        self.seed = seed
        self.name = f'split{split}_seed{seed}'
        self.work_dir = osp.join(root, self.name)
        self.log_path = osp.join(self.work_dir, LOG_FILENAME)
        if len(stages) == 1:
            self.stage_dirs = [self.work_dir]
        else:
            self.stage_dirs = [
                osp.join(self.work_dir, f'stage{k}_{name}')
                for k, name in enumerate(stages, 1)
            ]
        self.num_stages = len(self.stage_dirs)
        self.metrics_path = osp.join(self.stage_dirs[-1], METRICS_FILENAME)

    def __str__(self) -> str:
        return f'split {self.split} seed {self.seed}'

    def stage_name(self, stage: int) -> str:
        """'' for a one-stage run, else ' stage <k> of <n>' (``stage``
        counted from 0)."""
        if self.num_stages == 1:
            return ''
        return f' stage {stage + 1} of {self.num_stages}'

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

    def trained_stages(self) -> int:
        """How many stages have finished training."""
        state = self.read_state()
        if 'trained_stages' in state:
            return state['trained_stages']
        return self.num_stages if state.get('trained') else 0

    def is_done(self) -> bool:
        return (self.read_state()['status'] == 'done'
                and osp.exists(self.metrics_path))

    def final_checkpoint(self, stage: int = -1) -> str:
        """The checkpoint ``last_checkpoint`` of a stage names (written by
        mmengine's ``CheckpointHook``); the last stage by default."""
        path = osp.join(self.stage_dirs[stage], 'last_checkpoint')
        if not osp.exists(path):
            raise ProtocolError(
                f'{self}{self.stage_name(stage % self.num_stages)}: training '
                f'ended without a checkpoint (no {path}); see '
                f'{self.log_path}')
        with open(path) as f:
            return f.read().strip()


def split_value(text: str) -> Union[int, str]:
    """A ``--splits`` value: an index, or a split name (SSB)."""
    return int(text) if text.lstrip('-').isdigit() else text


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train and test every (split, seed) of an open-set '
        'protocol, then summarise mean ± std')
    parser.add_argument(
        'configs',
        nargs='+',
        metavar='config',
        help='config file; several: the stages of a multi-stage recipe in '
        "order, each starting from the previous stage's last checkpoint "
        '(weights only, a fresh optimizer); the last one is tested')
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
        help='config overrides given to tools/train.py and tools/test.py, '
        'for every stage (not osr_split or randomness.seed, which the '
        'runner sets, nor load_from with several stages)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'slurm'],
        default='none',
        help="'slurm' submits one sbatch job per run (and stage), which "
        "trains and tests through srun as mmpretrain's "
        'tools/slurm_train.sh does')
    parser.add_argument('--partition', help='SLURM partition')
    parser.add_argument(
        '--gpus-per-job',
        type=int,
        help='SLURM tasks (one GPU each) per run; 0: CPU tasks (--ntasks '
        'of them, gloo), for partitions without GPUs. Defaults to 1')
    parser.add_argument(
        '--ntasks',
        type=int,
        help='SLURM tasks (processes) per run; defaults to --gpus-per-job, '
        'or 1 on CPU')
    parser.add_argument(
        '--gpus-per-node',
        type=int,
        help='SLURM GPUs per node. Defaults to 8')
    parser.add_argument(
        '--cpus-per-task',
        type=int,
        help='SLURM CPUs per task. Defaults to 5')
    parser.add_argument(
        '--sbatch-args',
        help='more sbatch options, e.g. "--time=48:00:00 --qos=normal"')
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='print the commands of the runs left to do, run nothing')
    parser.add_argument(
        '--summarize-only',
        action='store_true',
        help='only summarise the finished runs')
    # Set in the job script of a SLURM run: run it here, through srun (one
    # stage of it, counted from 1, with several stages).
    parser.add_argument(
        '--in-job', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--job-stage', type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ('splits', 'seeds'):
        values = getattr(args, name) or ()
        if len(set(values)) < len(values):
            parser.error(f'--{name} lists a value twice: {values}')
    given = [
        name for name in SLURM_DEFAULTS if getattr(args, name) is not None
    ]
    if args.launcher != 'slurm' and given:
        parser.error(
            f'--{given[0].replace("_", "-")} is a SLURM option; add '
            '--launcher slurm (without it every run trains here)')
    for name in ('gpus', 'ntasks', 'gpus_per_node', 'cpus_per_task'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1, '
                         f'got {value}')
    if args.gpus_per_job is not None and args.gpus_per_job < 0:
        parser.error('--gpus-per-job must be at least 0 (0: CPU tasks), '
                     f'got {args.gpus_per_job}')
    if args.launcher == 'slurm':
        check_slurm_args(parser, args)
    return args


def check_slurm_args(parser: argparse.ArgumentParser,
                     args: argparse.Namespace) -> None:
    """Refuse SLURM options that cannot all take effect; fill in the
    defaults (:data:`SLURM_DEFAULTS`)."""
    if args.partition is None and not args.in_job:
        parser.error('--launcher slurm needs --partition')
    if args.gpus is not None:
        parser.error('--gpus is for local runs; with --launcher slurm '
                     f'use --gpus-per-job (got --gpus {args.gpus})')
    gpus = args.gpus_per_job
    if gpus == 0 and args.gpus_per_node is not None:
        parser.error(f'--gpus-per-node {args.gpus_per_node} with '
                     '--gpus-per-job 0 (CPU tasks): drop one of them')
    if gpus is None and args.ntasks is not None:
        parser.error(
            f'--ntasks {args.ntasks} without --gpus-per-job: give '
            f'--gpus-per-job {args.ntasks} (one GPU per task) or '
            '--gpus-per-job 0 (CPU tasks)')
    if gpus and args.ntasks is not None and args.ntasks != gpus:
        parser.error(
            f'--ntasks {args.ntasks} with --gpus-per-job {gpus}: on GPUs '
            'every task has one GPU, so the job runs --gpus-per-job tasks; '
            'drop --ntasks')
    for name, default in SLURM_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.ntasks is None:
        args.ntasks = args.gpus_per_job or 1


def parse_cfg_options(options: Sequence[str]) -> Dict:
    """``KEY=VALUE`` overrides as mmengine's ``DictAction`` reads them."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    if not options:
        return {}
    return parser.parse_args(['--cfg-options', *options]).cfg_options


def config_name(path: str) -> str:
    """A config file's name without folder and extension."""
    return osp.splitext(osp.basename(path))[0]


def recipe_name(configs: Sequence[str]) -> str:
    """The folder of the runs under ``--work-root``: the config name, or
    the names of the stages joined by '+'."""
    return '+'.join(config_name(path) for path in configs)


def load_config(args: argparse.Namespace) -> List[Config]:
    """The config of every stage with the user's overrides, checked for
    the protocol; fills in ``args.splits`` (every split of the protocol)
    if not given.

    Raises:
        ProtocolError: If ``--cfg-options`` sets what the runner sets, a
            config has no OSR protocol or the stages different ones, or a
            split is not one of it.
    """
    options = parse_cfg_options(args.cfg_options)
    taken = [key for key in options if key in RUN_KEYS]
    if taken:
        raise ProtocolError(
            f'--cfg-options sets {taken}; the runner sets osr_split and '
            'randomness.seed of every run from --splits and --seeds')
    taken = [key for key in options if key in STAGE_KEYS]
    if taken and len(args.configs) > 1:
        raise ProtocolError(
            f'--cfg-options sets {taken} for all {len(args.configs)} '
            "stages; the runner starts every stage from the previous one's "
            'last checkpoint (set a checkpoint of the first stage in its '
            'config)')
    cfgs, names = [], []
    for path in args.configs:
        cfg = Config.fromfile(path, import_custom_modules=False)
        cfg.merge_from_dict(options)
        protocols = {
            node['protocol']
            for node in iter_dicts(cfg._cfg_dict)
            if node.get('type') == 'OSRDataset' and node.get('protocol')
        }
        if len(protocols) != 1:
            raise ProtocolError(
                f'{path} has OSRDataset protocols {sorted(protocols)}; '
                'the runner needs a config of one protocol, whose split '
                'osr_split selects')
        cfgs.append(cfg)
        names.append(protocols.pop())
    if len(set(names)) > 1:
        stages = ', '.join(f'{path} ({name!r})'
                           for path, name in zip(args.configs, names))
        raise ProtocolError(
            f'the stages have different OSR protocols: {stages}; every '
            'stage of a run must train on the same split of one protocol')
    protocol_name = names[0]
    protocol = get_osr_protocol(protocol_name)
    if args.splits is None:
        args.splits = list(protocol.split_names or range(NUM_SPLITS))
    for split in args.splits:
        try:
            get_osr_split(protocol_name, split)
        except ValueError as error:
            raise ProtocolError(f'--splits: {error}') from None
    return cfgs


def config_record(args: argparse.Namespace, cfgs: Sequence[Config]) -> dict:
    """What ``protocol.json`` records: the config path (the paths of the
    stages), the SHA-256 of the resolved configs (overrides merged) and the
    overrides."""
    resolved = [cfg.to_dict() for cfg in cfgs]
    text = json.dumps(
        resolved[0] if len(resolved) == 1 else resolved,
        sort_keys=True,
        default=repr)
    paths = [osp.abspath(path) for path in args.configs]
    return dict(
        config=paths[0] if len(paths) == 1 else paths,
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


def srun_resources(args: argparse.Namespace) -> List[str]:
    """The resources of a job and of its ``srun`` steps: GPU tasks as
    mmpretrain's ``tools/slurm_train.sh`` asks for them, or CPU tasks."""
    if args.gpus_per_job:
        per_node = min(args.gpus_per_job, args.gpus_per_node)
        tasks = [
            f'--ntasks={args.gpus_per_job}', f'--ntasks-per-node={per_node}',
            f'--gres=gpu:{per_node}'
        ]
    else:
        tasks = [f'--ntasks={args.ntasks}']
    return [*tasks, f'--cpus-per-task={args.cpus_per_task}']


def tool_command(tool: str,
                 run: ProtocolRun,
                 args: argparse.Namespace,
                 *tool_args: str,
                 stage: int = -1,
                 options: Sequence[str] = ()) -> List[str]:
    """``tools/<tool>.py`` for one stage of a run (the last by default),
    through ``srun`` in a SLURM job; ``options`` go to ``--cfg-options``
    after the user's."""
    command = [
        sys.executable, '-u',
        osp.join(REPO, 'tools', f'{tool}.py'), args.configs[stage],
        *tool_args, '--work-dir', run.stage_dirs[stage], '--cfg-options',
        *args.cfg_options, *options, f'osr_split={run.split}',
        f'randomness.seed={run.seed}'
    ]
    if args.launcher != 'slurm':
        return command
    return [
        'srun', *srun_resources(args), '--kill-on-bad-exit=1', *command,
        '--launcher', 'slurm'
    ]


def train_command(run: ProtocolRun,
                  args: argparse.Namespace,
                  stage: int = 0,
                  dry_run: bool = False) -> List[str]:
    """Train one stage, resuming when its work dir has a checkpoint; a
    later stage starts from the previous one's last checkpoint."""
    if osp.exists(osp.join(run.stage_dirs[stage], 'last_checkpoint')):
        return tool_command('train', run, args, '--resume', stage=stage)
    options = []
    if stage > 0:
        checkpoint = (f'<last checkpoint of stage {stage}>'
                      if dry_run else run.final_checkpoint(stage - 1))
        options.append(f'load_from={checkpoint}')
    return tool_command('train', run, args, stage=stage, options=options)


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

    def step(self,
             run: ProtocolRun,
             status: str,
             command: List[str],
             env: Dict[str, str],
             stage: Optional[int] = None) -> bool:
        """Run one tool; record the run as ``status`` (of ``stage``) while
        it runs, and as failed or interrupted if it does not succeed."""
        where = '' if stage is None else run.stage_name(stage)
        changes = dict(status=status, command=command)
        if stage is not None and run.num_stages > 1:
            changes['stage'] = stage + 1
        run.update_state(**changes)
        print(f'{run}: {status}{where} (log: {run.log_path})', flush=True)
        if self.args.launcher == 'slurm':
            env = dict(env)
            # The rendezvous of the step's tasks on the job's first node
            # (where this runs): a free port, not 29500 for every job.
            env.setdefault('MASTER_PORT', str(free_port('')))
            if not self.args.gpus_per_job:
                # CPU tasks: as many threads as CPUs given to each task
                # (torch would start one per core of the node).
                env.setdefault('OMP_NUM_THREADS',
                               str(self.args.cpus_per_task))
        with open(run.log_path, 'a') as log:
            log.write(f'$ {shlex.join(command)}\n')
            log.flush()
            with self._lock:  # no new tool once stop() has begun
                child = None
                if not self.stopping.is_set():
                    child = subprocess.Popen(
                        command,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        preexec_fn=die_with_parent())
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
            print(f'{run}: interrupted while {status}{where}', flush=True)
        else:
            run.update_state(
                status='failed', failed_in=status, returncode=returncode)
            print(
                f'{run}: FAILED while {status}{where} (exit {returncode}); '
                f'log: {run.log_path}',
                flush=True)
        return False

    def execute(self,
                run: ProtocolRun,
                gpu: Optional[str] = None,
                only_stage: Optional[int] = None) -> None:
        """Train (or resume) every stage of one run not trained yet, then
        test the last one, unless the run is done. With ``only_stage``
        (a SLURM job of one stage, counted from 0) train that stage only,
        and test if it is the last one."""
        if self.stopping.is_set() or run.is_done():
            return
        env = dict(os.environ)
        if gpu is not None:
            env['CUDA_VISIBLE_DEVICES'] = gpu
        os.makedirs(run.work_dir, exist_ok=True)
        run.update_state(gpu=gpu, job_id=os.environ.get('SLURM_JOB_ID'))
        last = run.num_stages - 1
        stages = range(run.num_stages)
        if only_stage is not None:
            trained = run.trained_stages()
            if trained < only_stage:
                run.update_state(status='failed', failed_in='training')
                print(
                    f'{run}{run.stage_name(only_stage)}: stage '
                    f'{trained + 1} is not trained; run the same command '
                    'again to submit the stages left',
                    flush=True)
                return
            stages = [only_stage]
        for stage in stages:
            if stage < run.trained_stages():
                continue
            if not self.step(run, 'training',
                             train_command(run, self.args, stage), env,
                             stage):
                return
            run.update_state(
                trained_stages=stage + 1, trained=stage == last)
            if stage < last and only_stage is not None:
                # The next stage is the next job (queued after this one).
                run.update_state(status='submitted')
                print(f'{run}: trained{run.stage_name(stage)}', flush=True)
                return
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


def run_all(runs: Sequence[ProtocolRun],
            args: argparse.Namespace,
            only_stage: Optional[int] = None) -> bool:
    """Run the runs, ``len(gpu_slots(args.gpus))`` at a time (only the
    stage ``only_stage`` of them, if given).

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
            executor.execute(run, gpu, only_stage)
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


def job_script(run: ProtocolRun, args: argparse.Namespace,
               stage: int) -> str:
    """The sbatch script of one stage of a run: this runner, in the job,
    for that run (and stage)."""
    command = [
        sys.executable, '-u',
        osp.abspath(__file__), *args.configs, '--splits',
        str(run.split), '--seeds',
        str(run.seed), '--work-root', args.work_root, '--launcher', 'slurm',
        '--gpus-per-job',
        str(args.gpus_per_job)
    ]
    if args.gpus_per_job:
        command += ['--gpus-per-node', str(args.gpus_per_node)]
    else:
        command += ['--ntasks', str(args.ntasks)]
    command += ['--cpus-per-task', str(args.cpus_per_task), '--in-job']
    if run.num_stages > 1:
        command += ['--job-stage', str(stage + 1)]
    if args.cfg_options:
        command += ['--cfg-options', *args.cfg_options]
    what = 'train, then test' if stage == run.num_stages - 1 else 'train'
    return (f'#!/usr/bin/env bash\n# {run}{run.stage_name(stage)} of '
            f'{" ".join(args.configs)}: {what} through srun\n'
            f'cd {shlex.quote(os.getcwd())}\n'
            f'exec {shlex.join(command)}\n')


def job_script_path(run: ProtocolRun, stage: int) -> str:
    """``job.sh`` in the run's work dir (``job_stage<k>.sh``)."""
    name = 'job.sh' if run.num_stages == 1 else f'job_stage{stage + 1}.sh'
    return osp.join(run.work_dir, name)


def sbatch_command(run: ProtocolRun,
                   args: argparse.Namespace,
                   name: str,
                   stage: int = 0,
                   after: Optional[str] = None) -> List[str]:
    """The sbatch command of one stage of a run: the resources of
    mmpretrain's ``tools/slurm_train.sh`` (or CPU tasks), the output next
    to the run, after the job ``after`` has succeeded."""
    job_name = f'{name}_{run.name}'
    if run.num_stages > 1:
        job_name += f'_stage{stage + 1}'
    command = [
        'sbatch', '--parsable', f'--job-name={job_name}',
        f'--partition={args.partition}', *srun_resources(args),
        f'--output={osp.join(run.work_dir, "slurm-%j.out")}'
    ]
    if after is not None:
        # A stage whose previous stage failed or was cancelled can never
        # run: SLURM removes it instead of keeping it pending forever.
        command += [
            f'--dependency=afterok:{after}', '--kill-on-invalid-dep=yes'
        ]
    return [*command, *shlex.split(args.sbatch_args),
            job_script_path(run, stage)]


def slurm_job_active(job_id: Optional[str]) -> bool:
    """Whether ``squeue`` lists the job as pending or running."""
    if not job_id:
        return False
    try:
        result = subprocess.run(
            ['squeue', '--noheader', f'--jobs={job_id}', '--format=%T'],
            capture_output=True,
            text=True)
    except FileNotFoundError:
        return False
    states = result.stdout.split()
    return (result.returncode == 0 and bool(states)
            and states[0] not in ENDED_JOB_STATES)


def run_jobs(run: ProtocolRun) -> List[str]:
    """The SLURM jobs recorded for a run (of every stage)."""
    state = run.read_state()
    jobs = list((state.get('job_ids') or {}).values())
    if state.get('job_id') and state['job_id'] not in jobs:
        jobs.append(state['job_id'])
    return jobs


def submit(runs: Sequence[ProtocolRun], args: argparse.Namespace,
           name: str) -> None:
    """Submit one sbatch job per run and stage left to train (the stages
    chained with ``--dependency=afterok``), or print them with
    ``--dry-run``.

    Raises:
        ProtocolError: If sbatch fails, with its output.
    """
    for run in runs:
        # The last stage's job also tests: it is submitted even when every
        # stage is trained.
        first = min(run.trained_stages(), run.num_stages - 1)
        previous = None
        job_ids = {}
        for stage in range(first, run.num_stages):
            after = previous
            if args.dry_run and stage > first:
                after = f'<job of stage {stage}>'
            command = sbatch_command(run, args, name, stage, after)
            script = job_script(run, args, stage)
            if args.dry_run:
                print(f'{run}{run.stage_name(stage)}:\n  '
                      f'{shlex.join(command)}\n  '
                      f'{osp.basename(job_script_path(run, stage))}:\n    ' +
                      script.strip().replace('\n', '\n    '))
                continue
            os.makedirs(run.work_dir, exist_ok=True)
            with open(job_script_path(run, stage), 'w') as f:
                f.write(script)
            if stage == first:
                run.update_state(status='submitted', job_id=None, job_ids={})
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                run.update_state(status='failed', failed_in='submitted')
                raise ProtocolError(
                    f'{run}{run.stage_name(stage)}: {shlex.join(command)} '
                    f'failed (exit {result.returncode}): '
                    f'{result.stderr.strip()}')
            previous = result.stdout.strip().split(';')[0]
            job_ids[str(stage + 1)] = previous
            run.update_state(job_ids=job_ids, job_id=job_ids[str(first + 1)])
            chained = '' if stage == first else \
                f' after job {job_ids[str(stage)]}'
            print(f'{run}{run.stage_name(stage)}: submitted job {previous}'
                  f'{chained} (log: {run.log_path})',
                  flush=True)


def summarize_protocol(runs: Sequence[ProtocolRun], root: str,
                       name: str) -> bool:
    """Summarise the finished runs (their last stage) into
    ``<root>/summary.*``; list the missing ones with their state and log.

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
        title = (f'{name}: open-set metrics (%), mean ± std over '
                 f'{len(done)} runs')
        if runs[0].num_stages > 1:
            title += f' (stage {runs[0].num_stages})'
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
        if run.num_stages > 1 and state['status'] != 'pending':
            line += (f', {run.trained_stages()} of {run.num_stages} stages '
                     'trained')
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


def print_chain(run: ProtocolRun, args: argparse.Namespace) -> None:
    """``--dry-run`` without SLURM: the commands left to run for a run,
    stage after stage."""
    lines = [f'{run}:']
    for stage in range(run.trained_stages(), run.num_stages):
        command = shlex.join(train_command(run, args, stage, dry_run=True))
        lines.append(f'  {command}' if run.num_stages == 1 else
                     f'  stage {stage + 1} ({config_name(args.configs[stage])}'
                     f'):\n    {command}')
    test = tool_command('test', run, args, '<checkpoint in last_checkpoint>')
    lines.append(f'  {shlex.join(test)}' if run.num_stages == 1 else
                 f'  test stage {run.num_stages}:\n    {shlex.join(test)}')
    print('\n'.join(lines))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the protocol; returns the exit status (0: every run done, 1: some
    failed or missing, 130: interrupted)."""
    args = parse_args(argv)
    cfgs = load_config(args)
    if args.job_stage is not None and not (
            args.in_job and 1 <= args.job_stage <= len(cfgs)):
        raise ProtocolError(f'--job-stage {args.job_stage}: not a stage of '
                            f'the {len(cfgs)} given')
    name = recipe_name(args.configs)
    root = osp.abspath(osp.join(args.work_root, name))
    record = config_record(args, cfgs)
    check_work_root(root, record)
    stages = [config_name(path) for path in args.configs]
    runs = [
        ProtocolRun(root, split, seed, stages) for split in args.splits
        for seed in args.seeds
    ]
    if args.in_job:
        only = None if args.job_stage is None else args.job_stage - 1
        if not run_all(runs, args, only):
            return 1
        if only is not None and only < len(stages) - 1:
            return 0 if runs[0].trained_stages() > only else 1
        return 0 if runs[0].is_done() else 1
    if args.summarize_only:
        return 0 if summarize_protocol(runs, root, name) else 1
    todo = [run for run in runs if not run.is_done()]
    print(f'{name}: {len(runs)} runs, {len(runs) - len(todo)} done, '
          f'{len(todo)} to run in {root}')
    in_flight = []
    if args.launcher == 'slurm':
        for run in todo:
            if run.read_state()['status'] not in ACTIVE:
                continue
            active = [job for job in run_jobs(run) if slurm_job_active(job)]
            if active:
                in_flight.append(run)
                print(f'{run}: job {", ".join(active)} still queued or '
                      'running, not submitted again')
        todo = [run for run in todo if run not in in_flight]
    if args.dry_run:
        if args.launcher == 'slurm':
            submit(todo, args, name)
        else:
            for run in todo:
                print_chain(run, args)
        return 0
    with locked(root):
        with open(osp.join(root, RECORD_FILENAME), 'w') as f:
            json.dump(record, f, indent=2)
        if args.launcher == 'slurm' and (todo or in_flight):
            submit(todo, args, name)
            print('run the same command with --summarize-only once the '
                  'jobs are done')
            return 0
        if not run_all(todo, args):
            print('interrupted: run the same command again to resume')
            return 130
        return 0 if summarize_protocol(runs, root, name) else 1


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (ProtocolError, SummaryError) as error:
        sys.exit(f'error: {error}')
