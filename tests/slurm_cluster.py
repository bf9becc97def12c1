"""A one-node SLURM cluster for the tests, in a temporary folder.

Debian's ``slurm-wlm`` and ``munge`` packages (``.ci/run`` installs them)
are enough: :class:`SlurmCluster` writes a munge key and a ``slurm.conf``
of one node (this host, all its CPUs, no GPU) and one partition, starts
``munged``, ``slurmctld`` and ``slurmd`` in the foreground as children of
the test process, all state, spool, sockets and logs in its folder, and
waits until ``sinfo`` shows the node idle. :meth:`SlurmCluster.stop`
cancels what is left in the queue and stops the daemons by their PIDs.
Clients (``sbatch``, ``srun``, ``squeue``, ``scancel``) find the cluster
through ``SLURM_CONF`` (:attr:`SlurmCluster.env`); jobs inherit it, and
the rest of the submitting environment, from ``sbatch``.

Nothing outside the folder is touched, so the cluster needs root (slurmd
starts the jobs' steps as their users) but no systemd and no
``/etc/slurm``. :func:`missing_reason` says why a cluster cannot be
started here (what is not installed, or not root).
"""
import os
import os.path as osp
import shutil
import socket
import subprocess
import time
from typing import Dict, List, Optional

#: The daemons and clients the cluster needs.
DAEMONS = ('munged', 'slurmctld', 'slurmd')
CLIENTS = ('sbatch', 'srun', 'squeue', 'scancel', 'sinfo', 'scontrol')
#: Daemons live in sbin, often not on a user's PATH.
SBIN = ('/usr/sbin', '/sbin', '/usr/local/sbin')
PARTITION = 'debug'


def find_program(name: str) -> Optional[str]:
    """The path of ``name`` on ``PATH`` or in the sbin folders."""
    path = os.pathsep.join([os.environ.get('PATH', ''), *SBIN])
    return shutil.which(name, path=path)


def missing_reason() -> Optional[str]:
    """Why no cluster can be started here, or None if one can."""
    missing = [
        name for name in DAEMONS + CLIENTS if find_program(name) is None
    ]
    if missing:
        return (f'no SLURM here ({", ".join(missing)} not found): install '
                "Debian's slurm-wlm and munge packages (as .ci/run does) "
                'to run the real-cluster tests')
    if os.geteuid() != 0:
        return ('the test SLURM cluster needs root (slurmd starts job '
                'steps as their users); run the tests as root to include '
                'it')
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _memory_mb() -> int:
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('MemTotal:'):
                return int(line.split()[1]) // 1024
    return 1024


class SlurmClusterError(RuntimeError):
    """The cluster did not come up (the message holds the daemons'
    logs)."""


class SlurmCluster:
    """A one-node SLURM cluster whose files all live in ``root``.

    Args:
        root (str): An empty folder for the key, config, state and logs.
        cpus (int, optional): CPUs of the node. Defaults to
            ``os.cpu_count()``.
    """

    def __init__(self, root: str, cpus: Optional[int] = None):
        self.root = root
        self.cpus = cpus or os.cpu_count() or 1
        self.node = socket.gethostname().split('.')[0]
        try:  # the tasks of a job meet at the first node's address
            socket.gethostbyname(self.node)
        except OSError:
            self.node = 'localhost'
        self.conf = osp.join(root, 'slurm.conf')
        self.socket = osp.join(root, 'munge', 'munge.socket')
        self.partition = PARTITION
        self._daemons: List[subprocess.Popen] = []

    @property
    def env(self) -> Dict[str, str]:
        """What clients need in their environment to reach the
        cluster."""
        return dict(SLURM_CONF=self.conf)

    def _path(self, *parts: str) -> str:
        path = osp.join(self.root, *parts)
        os.makedirs(osp.dirname(path), exist_ok=True)
        return path

    def _dir(self, name: str) -> str:
        path = osp.join(self.root, name)
        os.makedirs(path, exist_ok=True)
        return path

    def _write_munge_key(self) -> str:
        munge_dir = osp.join(self.root, 'munge')
        os.makedirs(munge_dir, mode=0o700, exist_ok=True)
        key = osp.join(munge_dir, 'munge.key')
        with open(key, 'wb') as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        return key

    def _write_config(self) -> None:
        settings = dict(
            ClusterName='gradmixtest',
            SlurmctldHost=f'{self.node}(127.0.0.1)',
            SlurmctldPort=_free_port(),
            SlurmdPort=_free_port(),
            AuthType='auth/munge',
            AuthInfo=f'socket={self.socket}',
            CredType='cred/munge',
            SlurmUser='root',
            SlurmdUser='root',
            ProctrackType='proctrack/linuxproc',
            TaskPlugin='task/none',
            SelectType='select/cons_tres',
            SelectTypeParameters='CR_Core',
            AccountingStorageType='accounting_storage/none',
            JobAcctGatherType='jobacct_gather/none',
            JobCompType='jobcomp/none',
            MpiDefault='none',
            ReturnToService=2,
            # scancel: SIGTERM, then SIGKILL 5 s later (default 30 s).
            KillWait=5,
            SchedulerType='sched/backfill',
            StateSaveLocation=self._dir('state'),
            SlurmdSpoolDir=self._dir('spool'),
            SlurmctldPidFile=self._path('run', 'slurmctld.pid'),
            SlurmdPidFile=self._path('run', 'slurmd.pid'),
            SlurmctldLogFile=self._path('log', 'slurmctld.log'),
            SlurmdLogFile=self._path('log', 'slurmd.log'),
            SlurmctldDebug='info',
            SlurmdDebug='info',
        )
        lines = [f'{key}={value}' for key, value in settings.items()]
        lines += [
            f'NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} '
            f'RealMemory={_memory_mb()} State=UNKNOWN',
            f'PartitionName={self.partition} Nodes={self.node} Default=YES '
            'MaxTime=INFINITE State=UP',
        ]
        with open(self.conf, 'w') as f:
            f.write('\n'.join(lines) + '\n')

    def _start(self, *command: str) -> None:
        log = open(self._path('log', f'{osp.basename(command[0])}.out'),
                   'w')
        self._daemons.append(
            subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, **self.env),
                start_new_session=True))
        log.close()

    def start(self, timeout: float = 120) -> 'SlurmCluster':
        """Start the daemons and wait for the node to be idle.

        Args:
            timeout (float): Seconds to wait for the node. Defaults to 120.

        Raises:
            SlurmClusterError: If the node is not idle in time, with the
                daemons' logs.
        """
        key = self._write_munge_key()
        self._write_config()
        self._start(
            find_program('munged'), '--foreground', '--force',
            f'--key-file={key}', f'--socket={self.socket}',
            f'--pid-file={self._path("munge", "munged.pid")}',
            f'--log-file={self._path("log", "munged.log")}',
            f'--seed-file={self._path("munge", "munged.seed")}')
        self._wait(lambda: osp.exists(self.socket), 30, 'munged socket')
        self._start(find_program('slurmctld'), '-D', '-f', self.conf)
        self._start(
            find_program('slurmd'), '-D', '-f', self.conf, '-N', self.node)
        self._wait(lambda: self.node_state() == 'idle', timeout,
                   f'node {self.node} idle')
        return self

    def _wait(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            exited = [d.args[0] for d in self._daemons if d.poll() is not None]
            if exited or time.monotonic() > deadline:
                self.stop()
                raise SlurmClusterError(
                    f'the test SLURM cluster did not come up (waiting for '
                    f'{what}; exited: {exited or "none"}):\n' + self.logs())
            time.sleep(0.5)

    def client(self, *command: str,
               check: bool = True) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=dict(os.environ, **self.env))
        if check and result.returncode != 0:
            raise SlurmClusterError(
                f'{" ".join(command)} failed (exit {result.returncode}): '
                f'{result.stderr.strip()}')
        return result

    def node_state(self) -> str:
        """``sinfo``'s short state of the node ('' if unreachable)."""
        result = self.client('sinfo', '--noheader', '--format=%t',
                             check=False)
        return result.stdout.strip() if result.returncode == 0 else ''

    def jobs(self) -> List[str]:
        """The ids of the jobs in the queue (pending, running or
        completing)."""
        result = self.client('squeue', '--noheader', '--format=%i',
                             check=False)
        return result.stdout.split() if result.returncode == 0 else []

    def wait_for_jobs(self,
                      job_ids: Optional[List[str]] = None,
                      timeout: float = 300) -> None:
        """Wait until the jobs (default: all) have left the queue.

        Raises:
            TimeoutError: Naming the jobs still queued.
        """
        deadline = time.monotonic() + timeout
        while True:
            queued = self.jobs()
            if job_ids is not None:
                queued = [job for job in queued if job in job_ids]
            if not queued:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f'SLURM jobs {queued} still queued after '
                                   f'{timeout} s')
            time.sleep(0.5)

    def logs(self, lines: int = 30) -> str:
        """The last ``lines`` of every daemon log."""
        texts = []
        log_dir = osp.join(self.root, 'log')
        for name in sorted(os.listdir(log_dir)) if osp.isdir(log_dir) else []:
            with open(osp.join(log_dir, name), errors='replace') as f:
                tail = f.readlines()[-lines:]
            texts.append(f'--- {name}\n' + ''.join(tail))
        return '\n'.join(texts)

    def stop(self) -> None:
        """Cancel the queued jobs, then stop the daemons by their PIDs
        (killed after 10 s)."""
        if self._daemons and all(d.poll() is None for d in self._daemons):
            self.client('scancel', f'--partition={self.partition}',
                        check=False)
            try:
                self.wait_for_jobs(timeout=30)
            except TimeoutError:
                pass
        for daemon in reversed(self._daemons):
            if daemon.poll() is None:
                daemon.terminate()
        for daemon in reversed(self._daemons):
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        self._daemons = []
