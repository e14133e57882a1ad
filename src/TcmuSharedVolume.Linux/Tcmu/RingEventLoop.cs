using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Linux.Tcmu;

/// <summary>What runs the commands of one ring (the daemon's: CommandSet.Execute on the ring's path).</summary>
public interface ICommandExecutor
{
    /// <summary>Runs on one of the loop's threads; sets the command's status. The loop completes it afterwards.</summary>
    void Execute(ScsiCommand command);

    /// <summary>A TMR notification (docs/tcmu.md §11), on the thread that found it while draining
    /// the ring: keep it short. Listed commands that were still queued have already been completed with TASK
    /// ABORTED; running ones complete normally. For LUN RESET, apply the logical unit's reset
    /// semantics here.</summary>
    void TaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds);
}

/// <summary>
/// Serves many rings with one pool of threads. Every thread both waits and works. With nothing
/// running, an idle thread waits in epoll_wait on every ring's UIO fd (edge-triggered, with an
/// eventfd to wake it); the thread that gets a ring's event drains the ring into the ring's queue
/// and then runs the first command itself, so a lone command (queue depth 1) costs no hand-off
/// between threads. When more work is queued than the threads already running can take, the
/// thread wakes one standing-by thread, which does the same in turn.
/// While commands run, the other threads stand by on a private eventfd instead of epoll: the
/// kernel notifies the UIO fd once per command, and a thread asleep in epoll_wait would be woken
/// by every one of them (one context switch per command, the cost that dominated under load).
/// Instead, a thread that finishes a command collects events without sleeping (epoll_wait with
/// timeout 0), and one standing-by thread, the watch, does the same every
/// <see cref="StandbyMilliseconds"/>, so task management, new rings and other rings' commands
/// wait at most that long behind commands that are all slow. The other standing-by threads sleep
/// until there is work for them: with slow disks, a machine with many processors would
/// otherwise wake every idle thread 500 times a second for as long as one command runs. The
/// watch is woken for work only when no other thread stands by, and a watch that leaves for
/// work while others sleep wakes one of them to take its place. At most
/// <see cref="WorkerCount"/> commands run at once and there is one thread more than that, so
/// some thread is always free to collect events.
/// Fairness: each ring has its own queue; rings with work are served round-robin one command at
/// a time, and no ring may run more than <see cref="MaxRunningPerRing"/> commands at once, so a
/// slow volume leaves threads for the others.
/// Kicks: a thread kicks its ring as soon as its command is complete, and a drain that completed
/// anything itself kicks too. Completions written by other threads meanwhile ride along on the
/// same kick (<see cref="TcmuRing.Flush"/>). Holding completions back to share kicks within a
/// burst was measured slower in the VM (4 KiB reads at queue depth 32: −8 %): the kernel's
/// completion work and fio's next submissions start later, and nothing else is saved.
/// Edge-triggered epoll needs no read of the UIO fd: every command or TMR the kernel queues
/// notifies the fd (uio_event_notify), which is one edge, and a drain always empties the ring.
/// </summary>
public sealed unsafe class RingEventLoop : IDisposable
{
    /// <summary>Longest a standing-by thread sleeps before it looks for events itself, while other
    /// threads run commands (which may all be slow).</summary>
    public const int StandbyMilliseconds = 2;
    private const ulong WakeToken = 0;
    private const int MaxEvents = 64;

    [ThreadStatic] private static RingEventLoop? t_servedBy;

    private sealed class RingContext(RingEventLoop loop, TcmuRing ring, IRingEventSource source, ICommandExecutor executor, ulong token)
        : IRingConsumer
    {
        public readonly TcmuRing Ring = ring;
        public readonly IRingEventSource Source = source;
        public readonly ICommandExecutor Executor = executor;
        public readonly ulong Token = token;
        public readonly CommandQueue Queue = new(64);   // under loop._sched
        public ScsiCommand[] Pending = new ScsiCommand[64]; // this drain's commands; under lock(this)
        public int PendingCount;
        public int Running;                              // under loop._sched
        /// <summary>Threads that may still touch the ring or its mapping: a command taken until
        /// its kick is done (which is after <see cref="Running"/> drops), a drain until its kick.
        /// Interlocked. The mapping may be freed only when this is 0 and the ring is detached.</summary>
        public int Users;
        public bool Scheduled;                           // in the run queue; under loop._sched
        public volatile bool Detached;

        public void OnCommand(ScsiCommand command)
        {
            if (PendingCount == Pending.Length) Array.Resize(ref Pending, Pending.Length * 2);
            Pending[PendingCount++] = command;
        }

        public void OnTaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds) => loop.TaskManagement(this, type, commandIds);
    }

    private readonly int _epoll;
    private readonly int _wake;
    private readonly int _standbyEpoll;   // only _standby in it
    private readonly int _standby;        // wakes one standing-by thread other than the watch
    private readonly int _watchEpoll;     // only _watchWake in it
    private readonly int _watchWake;      // wakes the watch
    private readonly Action<TcmuRing, string>? _ringLost;
    private readonly Lock _registry = new();
    private readonly Dictionary<ulong, RingContext> _byToken = new();
    private readonly Dictionary<TcmuRing, RingContext> _byRing = new(ReferenceEqualityComparer.Instance);
    private readonly ConcurrentQueue<RingContext> _serviceRequests = new();
    private readonly Lock _sched = new();
    private readonly Queue<RingContext> _runQueue = new();
    private readonly Thread[] _threads;
    private ulong _nextToken;
    private int _executing;         // commands running now; under _sched
    private volatile bool _stopping;
    private volatile bool _threadsExit;
    private int _stopped;
    private int _servicing;         // threads inside Service (drains), for Stop
    private int _wakePending;       // 1: a wake was written to the eventfd and not taken yet
    private int _standingBy;        // threads standing by, the watch included
    private int _watching;          // 1: a standing-by thread keeps the watch
    private int _standbyWakePending;
    private int _watchWakePending;
    private long _standbyWakeups;   // standing-by threads that woke, for any reason
    private bool _disposed;

    /// <param name="workerCount">Commands that may run at once; default 2 × processors. The loop has
    /// one thread more.</param>
    /// <param name="maxRunningPerRing">Most commands one ring may run at once; default workers − 1 (at least 1).</param>
    /// <param name="ringLost">Called once per ring that stops being served (device gone, ring failed,
    /// kick failed), on one of the loop's threads. Call <see cref="Remove"/> afterwards, from
    /// another thread, before unmapping.</param>
    public RingEventLoop(int workerCount = 0, int maxRunningPerRing = 0, Action<TcmuRing, string>? ringLost = null)
    {
        WorkerCount = workerCount > 0 ? workerCount : Environment.ProcessorCount * 2;
        MaxRunningPerRing = maxRunningPerRing > 0 ? maxRunningPerRing : Math.Max(1, WorkerCount - 1);
        _ringLost = ringLost;

        _epoll = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
        if (_epoll < 0) throw Errno("epoll_create1");
        _wake = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        if (_wake < 0)
        {
            var e = Errno("eventfd");
            Libc.close(_epoll);
            throw e;
        }
        // Edge-triggered: one write wakes one waiting thread, and the counter never needs reading.
        var ev = new EpollEvent { Events = Libc.EPOLLIN | Libc.EPOLLET, Data = WakeToken };
        if (Libc.epoll_ctl(_epoll, Libc.EPOLL_CTL_ADD, _wake, &ev) < 0)
        {
            var e = Errno("epoll_ctl(ADD eventfd)");
            Libc.close(_wake);
            Libc.close(_epoll);
            throw e;
        }

        _standbyEpoll = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
        _standby = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        _watchEpoll = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
        _watchWake = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        var sev = new EpollEvent { Events = Libc.EPOLLIN | Libc.EPOLLET, Data = WakeToken };
        if (_standbyEpoll < 0 || _standby < 0 || _watchEpoll < 0 || _watchWake < 0
            || Libc.epoll_ctl(_standbyEpoll, Libc.EPOLL_CTL_ADD, _standby, &sev) < 0
            || Libc.epoll_ctl(_watchEpoll, Libc.EPOLL_CTL_ADD, _watchWake, &sev) < 0)
        {
            var e = Errno("standby eventfd/epoll");
            foreach (int fd in new[] { _watchWake, _watchEpoll, _standby, _standbyEpoll, _wake, _epoll })
                if (fd >= 0) Libc.close(fd);
            throw e;
        }

        _threads = new Thread[WorkerCount + 1];
        for (int i = 0; i < _threads.Length; i++)
            _threads[i] = new Thread(Work) { IsBackground = true, Name = $"tcmu-ring-{i}" };
        foreach (var t in _threads) t.Start();
    }

    public int WorkerCount { get; }
    public int MaxRunningPerRing { get; }

    /// <summary>How many times a standing-by thread woke up (work, the watch's timeout, stop).</summary>
    internal long StandbyWakeups => Interlocked.Read(ref _standbyWakeups);

    public int RingCount
    {
        get { lock (_registry) return _byRing.Count; }
    }

    /// <summary>Starts serving <paramref name="ring"/>: its <paramref name="source"/> fd joins the
    /// epoll set and the ring is drained once at once (work queued before the fd joined raised
    /// its edge before anyone was listening).</summary>
    public void Add(TcmuRing ring, IRingEventSource source, ICommandExecutor executor)
    {
        ArgumentNullException.ThrowIfNull(ring);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(executor);
        if (_stopping) throw new InvalidOperationException("the ring event loop is stopping");
        RingContext ctx;
        lock (_registry)
        {
            if (_byRing.ContainsKey(ring)) throw new InvalidOperationException($"{ring.Name} is already served");
            ctx = new RingContext(this, ring, source, executor, ++_nextToken);
            _byRing.Add(ring, ctx);
            _byToken.Add(ctx.Token, ctx);
        }
        var ev = new EpollEvent { Events = Libc.EPOLLIN | Libc.EPOLLET, Data = ctx.Token };
        if (Libc.epoll_ctl(_epoll, Libc.EPOLL_CTL_ADD, source.Fd, &ev) < 0)
        {
            var e = Errno($"epoll_ctl(ADD {ring.Name})");
            lock (_registry)
            {
                _byRing.Remove(ring);
                _byToken.Remove(ctx.Token);
            }
            throw e;
        }
        _serviceRequests.Enqueue(ctx);
        Wake();
    }

    /// <summary>
    /// Stops serving <paramref name="ring"/>: no more drains, queued commands are completed with
    /// BUSY (the initiator retries elsewhere or later), running ones finish. Returns false if they
    /// did not finish within <paramref name="timeout"/>; then the mapping must not be unmapped:
    /// call again later (a zero timeout only looks) until it returns true. Once it has returned
    /// true no thread of the loop touches the ring or its mapping again.
    /// Not from one of the loop's threads (it would hold a thread the ring's commands may need).
    /// </summary>
    public bool Remove(TcmuRing ring, TimeSpan timeout)
    {
        RingContext? ctx;
        lock (_registry) _byRing.TryGetValue(ring, out ctx);
        if (ctx == null) return true;
        Detach(ctx);
        if (!WaitIdle(ctx, DateTime.UtcNow + timeout)) return false;
        lock (_registry) _byRing.Remove(ring);
        FlushQuietly(ctx);
        return true;
    }

    /// <summary>
    /// Serves everything the rings hold now, while the loop keeps running: entries not read yet
    /// (their uio event may still be on its way) are read, and every command handed out is
    /// completed and kicked. The daemon calls this on stop after blocking its devices, so that no
    /// new entries arrive and the rings it leaves are empty: nothing waits there for the next
    /// daemon with the kernel's cmd_time_out running, whose expiry is a hard NOT READY error
    /// rather than the BUSY that blocked commands get (docs/tcmu.md §12, §13). Returns false
    /// if something was still unserved at <paramref name="timeout"/> or the loop is stopped.
    /// </summary>
    public bool Quiesce(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        RingContext[] all;
        lock (_registry) all = _byRing.Values.ToArray();
        while (!_stopping)
        {
            bool busy = false;
            foreach (var ctx in all)
            {
                if (ctx.Detached || ctx.Ring.IsFailed) continue;
                if (ctx.Ring.HasUnreadEntries)
                {
                    busy = true;
                    _serviceRequests.Enqueue(ctx);
                }
                else if (ctx.Ring.Outstanding != 0 || ctx.Ring.HasUnkickedCompletions)
                {
                    busy = true;
                }
            }
            if (!busy) return true;
            if (DateTime.UtcNow >= deadline) return false;
            Wake();
            Thread.Sleep(2);
        }
        return false;
    }

    /// <summary>
    /// Clean stop: no new work is taken from any ring; commands already queued or running finish
    /// (up to <paramref name="timeout"/>); every ring is kicked; the threads end. Returns whether
    /// everything finished in time.
    /// </summary>
    public bool Stop(TimeSpan timeout)
    {
        if (t_servedBy == this) throw new InvalidOperationException("Stop cannot run on one of the loop's threads");
        if (Interlocked.Exchange(ref _stopped, 1) != 0) return true;
        var deadline = DateTime.UtcNow + timeout;
        _stopping = true;
        // A drain already under way still hands its commands to the queues: let it finish first.
        while (Volatile.Read(ref _servicing) != 0 && DateTime.UtcNow < deadline) Thread.Sleep(1);

        RingContext[] all;
        lock (_registry) all = _byRing.Values.ToArray();
        bool idle = Volatile.Read(ref _servicing) == 0;
        foreach (var ctx in all)
            idle &= WaitIdle(ctx, deadline);
        foreach (var ctx in all)
            FlushQuietly(ctx);

        _threadsExit = true;
        Wake(); // each thread passes the wakes on as it leaves
        WakeStandby();
        WakeWatch();
        foreach (var t in _threads)
        {
            var left = deadline - DateTime.UtcNow;
            if (!t.Join(left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(100)))
                idle = false; // stuck in an executor; it is a background thread and dies with the process
        }
        if (!idle) Log.Warning("ring event loop stopped with commands still running or queued");
        return idle;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Stop(TimeSpan.FromSeconds(5));
        Libc.close(_wake);
        Libc.close(_epoll);
        Libc.close(_standby);
        Libc.close(_standbyEpoll);
        Libc.close(_watchWake);
        Libc.close(_watchEpoll);
    }

    /// <summary>Every thread: run queued commands while there are any it may take, else collect
    /// events; sleep in epoll only when no command runs, else stand by.</summary>
    private void Work()
    {
        t_servedBy = this;
        var events = stackalloc EpollEvent[MaxEvents];
        while (true)
        {
            if (TryTake(out var ctx, out var command))
            {
                // If this thread was the watch, the others standing by sleep without a timeout:
                // one of them takes the watch over (full fences order this against StandBy).
                if (Volatile.Read(ref _watching) == 0 && Volatile.Read(ref _standingBy) > 0) WakeStandby();
                Execute(ctx, command);
                continue;
            }
            if (_threadsExit)
            {
                Interlocked.Exchange(ref _wakePending, 0);
                Interlocked.Exchange(ref _standbyWakePending, 0);
                Interlocked.Exchange(ref _watchWakePending, 0);
                Wake(); // the next thread leaves too
                WakeStandby();
                WakeWatch();
                return;
            }
            if (Volatile.Read(ref _executing) == 0)
            {
                if (!Poll(events, block: true)) return;
                continue;
            }
            // Commands are running: take what has arrived without sleeping in epoll (where every
            // new command would wake us), then stand by until woken or StandbyMilliseconds pass.
            if (!Poll(events, block: false)) return;
            if (HasRunnableWork()) continue;
            StandBy(events);
        }
    }

    private bool HasRunnableWork()
    {
        lock (_sched) return _runQueue.Count > 0 && _executing < WorkerCount;
    }

    private void StandBy(EpollEvent* events)
    {
        Interlocked.Increment(ref _standingBy);
        bool watch = Interlocked.CompareExchange(ref _watching, 1, 0) == 0;
        // Re-check after counting ourselves (full fence): the last running command may have
        // finished meanwhile, and its thread may have gone to epoll or stood by as well.
        if (Volatile.Read(ref _executing) != 0 && !HasRunnableWork() && !_threadsExit)
        {
            if (watch) Libc.epoll_wait(_watchEpoll, events, 1, StandbyMilliseconds);
            else Libc.epoll_wait(_standbyEpoll, events, 1, -1);
            Interlocked.Increment(ref _standbyWakeups);
        }
        if (watch)
        {
            Interlocked.Exchange(ref _watching, 0);
            Interlocked.Exchange(ref _watchWakePending, 0);
        }
        else
        {
            Interlocked.Exchange(ref _standbyWakePending, 0);
        }
        Interlocked.Decrement(ref _standingBy);
    }

    /// <summary>One epoll_wait and what it brought; <paramref name="block"/> false only collects.
    /// Returns false if the loop cannot go on.</summary>
    private bool Poll(EpollEvent* events, bool block)
    {
        int n = Libc.epoll_wait(_epoll, events, MaxEvents, block ? -1 : 0);
        int errno = n < 0 ? Marshal.GetLastPInvokeError() : 0;
        if (n < 0)
        {
            if (errno == Libc.EINTR) return true;
            Log.Error($"epoll_wait: {Libc.ErrorMessage(errno)}; ring event loop thread ends");
            return false;
        }
        for (int i = 0; i < n; i++)
        {
            ulong token = events[i].Data;
            uint revents = events[i].Events;
            if (token == WakeToken)
            {
                Interlocked.Exchange(ref _wakePending, 0);
                continue;
            }
            if (_stopping) continue;
            RingContext? ctx;
            lock (_registry) _byToken.TryGetValue(token, out ctx);
            if (ctx == null) continue;
            if ((revents & ~Libc.EPOLLIN) != 0)
            {
                // uio_poll reports everything, POLLERR/POLLHUP included, once the device is
                // unregistered (docs/tcmu.md §3).
                Lose(ctx, $"device gone (epoll events 0x{revents:x})");
                continue;
            }
            Service(ctx);
        }
        while (!_stopping && _serviceRequests.TryDequeue(out var requested))
            Service(requested);
        return true;
    }

    /// <summary>Drains the ring into its queue. Two threads may get events of one ring at once
    /// (the kernel queued more while the first was draining): the second waits and drains what is new.</summary>
    private void Service(RingContext ctx)
    {
        // Counted before Detached is read: Remove either sees this drain or the drain sees Detached
        // and leaves the ring alone (its mapping may be gone).
        Interlocked.Increment(ref ctx.Users);
        try
        {
            ServiceCounted(ctx);
        }
        finally
        {
            Interlocked.Decrement(ref ctx.Users);
        }
    }

    private void ServiceCounted(RingContext ctx)
    {
        string? lost = null;
        Interlocked.Increment(ref _servicing);
        try
        {
            lock (ctx)
            {
                if (ctx.Detached) return;
                try
                {
                    ctx.Ring.Drain(ctx);
                }
                catch (Exception e)
                {
                    lost = $"{e.GetType().Name}: {e.Message}";
                }

                if (ctx.PendingCount > 0)
                {
                    int added = ctx.PendingCount;
                    lock (_sched)
                    {
                        for (int i = 0; i < added; i++)
                            ctx.Queue.Enqueue(ctx.Pending[i]);
                        Schedule(ctx);
                    }
                    Array.Clear(ctx.Pending, 0, added);
                    ctx.PendingCount = 0;
                }
            }
        }
        finally
        {
            Interlocked.Decrement(ref _servicing);
        }

        if (lost == null)
        {
            try
            {
                ctx.Ring.Flush(); // completions written during the drain (malformed entries, TMR aborts)
            }
            catch (Exception e)
            {
                lost = $"kick failed: {e.Message}";
            }
        }
        if (lost == null && ctx.Ring.IsFailed)
            lost = "ring failed: " + ctx.Ring.FailureReason;
        if (lost != null)
            Lose(ctx, lost);
    }

    private void TaskManagement(RingContext ctx, TmrType type, ReadOnlySpan<ushort> ids)
    {
        int aborted = 0;
        foreach (ushort id in ids)
        {
            ScsiCommand? victim = null;
            for (int i = 0; i < ctx.PendingCount; i++)
            {
                if (ctx.Pending[i].TransportTag != id) continue;
                victim = ctx.Pending[i];
                Array.Copy(ctx.Pending, i + 1, ctx.Pending, i, ctx.PendingCount - i - 1);
                ctx.Pending[--ctx.PendingCount] = null!;
                break;
            }
            if (victim == null)
            {
                lock (_sched) ctx.Queue.TryRemove(id, out victim);
            }
            if (victim == null) continue; // running (completes normally) or already completed
            // Any status will do: the core marked the command aborted (docs/tcmu.md §11).
            victim.Complete(ScsiStatus.TaskAborted);
            ctx.Ring.Complete(victim);
            aborted++;
        }
        Log.Info($"{ctx.Ring.Name}: {type} for {ids.Length} commands, {aborted} aborted before they ran");
        try
        {
            ctx.Executor.TaskManagement(type, ids);
        }
        catch (Exception e)
        {
            Log.Error($"{ctx.Ring.Name}: task management {type} failed: {e}");
        }
    }

    /// <summary>The next command in round-robin order, if a run slot is free. Wakes another thread
    /// when more could run than the threads already running will take.</summary>
    private bool TryTake(out RingContext ctx, out ScsiCommand command)
    {
        bool more;
        lock (_sched)
        {
            while (true)
            {
                if (_runQueue.Count == 0 || _executing >= WorkerCount)
                {
                    ctx = null!;
                    command = null!;
                    return false;
                }
                ctx = _runQueue.Dequeue();
                ctx.Scheduled = false;
                if (ctx.Queue.Count == 0 || ctx.Running >= MaxRunningPerRing) continue;
                command = ctx.Queue.Dequeue();
                ctx.Running++;
                Interlocked.Increment(ref ctx.Users);
                _executing++;
                // Back to the end of the line: the next command of this ring waits for the other rings' turn.
                Schedule(ctx);
                more = _runQueue.Count > 0 && _executing < WorkerCount;
                break;
            }
        }
        if (more)
        {
            // A standing-by thread if there is one; else one asleep in epoll.
            if (Volatile.Read(ref _standingBy) > 0) WakeStandby();
            else Wake();
        }
        return true;
    }

    private void Execute(RingContext ctx, ScsiCommand command)
    {
        try
        {
            ctx.Executor.Execute(command);
        }
        catch (Exception e)
        {
            Log.Error($"{ctx.Ring.Name}: command {command.OperationCode:X2}h failed: {e}");
            command.CheckCondition(SenseCode.InternalTargetFailure);
        }
        ctx.Ring.Complete(command); // the command is back in the pool: do not touch it again

        lock (_sched)
        {
            ctx.Running--;
            _executing--;
            Schedule(ctx);
        }
        try
        {
            ctx.Ring.Flush();
        }
        catch (Exception e)
        {
            Lose(ctx, $"kick failed: {e.Message}");
        }
        Interlocked.Decrement(ref ctx.Users);
    }

    /// <summary>Puts the ring in the run queue if it has work and a free slot. Under _sched.</summary>
    private bool Schedule(RingContext ctx)
    {
        if (ctx.Scheduled || ctx.Detached || ctx.Queue.Count == 0 || ctx.Running >= MaxRunningPerRing) return false;
        ctx.Scheduled = true;
        _runQueue.Enqueue(ctx);
        return true;
    }

    private void Lose(RingContext ctx, string reason)
    {
        if (!Detach(ctx)) return;
        Log.Warning($"{ctx.Ring.Name}: no longer served: {reason}");
        try
        {
            _ringLost?.Invoke(ctx.Ring, reason);
        }
        catch (Exception e)
        {
            Log.Error($"{ctx.Ring.Name}: ring-lost callback failed: {e}");
        }
    }

    /// <summary>Takes the ring out of epoll and completes its queued commands with BUSY. Once.</summary>
    private bool Detach(RingContext ctx)
    {
        lock (ctx)
        {
            if (ctx.Detached) return false;
            ctx.Detached = true;
        }
        // Errors are expected here: the fd may already be closed or the device gone.
        Libc.epoll_ctl(_epoll, Libc.EPOLL_CTL_DEL, ctx.Source.Fd, null);
        lock (_registry) _byToken.Remove(ctx.Token);

        var cancelled = new List<ScsiCommand>();
        lock (_sched)
        {
            while (ctx.Queue.Count > 0) cancelled.Add(ctx.Queue.Dequeue());
        }
        foreach (var command in cancelled)
        {
            command.Complete(ScsiStatus.Busy);
            ctx.Ring.Complete(command);
        }
        FlushQuietly(ctx);
        return true;
    }

    private bool WaitIdle(RingContext ctx, DateTime deadline)
    {
        // Polls: Stop and Remove are rare, and the loop's threads never wait for them.
        while (true)
        {
            lock (_sched)
            {
                if (ctx.Running == 0 && ctx.Queue.Count == 0 && Volatile.Read(ref ctx.Users) == 0) return true;
            }
            if (DateTime.UtcNow >= deadline) return false;
            Thread.Sleep(2);
        }
    }

    private static void FlushQuietly(RingContext ctx)
    {
        try
        {
            ctx.Ring.Flush();
        }
        catch (Exception e)
        {
            Log.Debug($"{ctx.Ring.Name}: kick failed: {e.Message}");
        }
    }

    /// <summary>Wakes one standing-by thread, the watch only if no other stands by; a wake not
    /// yet taken is not repeated.</summary>
    private void WakeStandby()
    {
        if (Volatile.Read(ref _standingBy) - Volatile.Read(ref _watching) <= 0)
        {
            WakeWatch();
            return;
        }
        if (Interlocked.Exchange(ref _standbyWakePending, 1) != 0) return;
        ulong one = 1;
        Libc.write(_standby, &one, sizeof(ulong));
    }

    private void WakeWatch()
    {
        if (Interlocked.Exchange(ref _watchWakePending, 1) != 0) return;
        ulong one = 1;
        Libc.write(_watchWake, &one, sizeof(ulong));
    }

    /// <summary>Wakes one thread waiting in epoll; a wake not yet taken is not repeated.</summary>
    private void Wake()
    {
        if (Interlocked.Exchange(ref _wakePending, 1) != 0) return;
        ulong one = 1;
        Libc.write(_wake, &one, sizeof(ulong));
    }

    private static IOException Errno(string what)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new IOException($"{what}: {Libc.ErrorMessage(errno)} (errno {errno})");
    }

    /// <summary>FIFO of commands that can also give up one by tag (for ABORT TASK); no allocation
    /// once grown to the ring's peak.</summary>
    private sealed class CommandQueue(int capacity)
    {
        private ScsiCommand?[] _items = new ScsiCommand?[Math.Max(4, capacity)];
        private int _head;

        public int Count { get; private set; }

        public void Enqueue(ScsiCommand command)
        {
            if (Count == _items.Length)
            {
                var bigger = new ScsiCommand?[_items.Length * 2];
                for (int i = 0; i < Count; i++) bigger[i] = _items[(_head + i) % _items.Length];
                _items = bigger;
                _head = 0;
            }
            _items[(_head + Count) % _items.Length] = command;
            Count++;
        }

        public ScsiCommand Dequeue()
        {
            var command = _items[_head]!;
            _items[_head] = null;
            _head = (_head + 1) % _items.Length;
            Count--;
            return command;
        }

        public bool TryRemove(int tag, out ScsiCommand? command)
        {
            for (int i = 0; i < Count; i++)
            {
                int at = (_head + i) % _items.Length;
                if (_items[at]!.TransportTag != tag) continue;
                command = _items[at];
                for (int j = i; j < Count - 1; j++)
                    _items[(_head + j) % _items.Length] = _items[(_head + j + 1) % _items.Length];
                _items[(_head + Count - 1) % _items.Length] = null;
                Count--;
                return true;
            }
            command = null;
            return false;
        }
    }
}
