using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Linux.Tcmu;

/// <summary>What runs the commands of one ring (the daemon's: CommandSet.Execute on the ring's path).</summary>
public interface ICommandExecutor
{
    /// <summary>Runs on a worker thread; sets the command's status. The loop completes it afterwards.</summary>
    void Execute(ScsiCommand command);

    /// <summary>A TMR notification (§9), on the loop thread: keep it short. Listed commands that
    /// were still queued have already been completed with TASK ABORTED; running ones complete
    /// normally. For LUN RESET, apply the logical unit's reset semantics here.</summary>
    void TaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds);
}

/// <summary>
/// One thread waits with epoll on every ring's UIO fd (and an eventfd to wake or stop it); on
/// readiness it consumes the event, drains the ring and queues the commands. A fixed pool of
/// workers runs them. Fairness: each ring has its own queue; rings with work are served
/// round-robin one command at a time, and no ring may occupy more than
/// <see cref="MaxRunningPerRing"/> workers, so a slow volume leaves workers for the others.
/// Kicks: a worker kicks its ring when that ring's queue is empty or no other command of it is
/// running (and every <see cref="CompletionsPerKick"/> completions under sustained load); the
/// loop kicks after a drain that completed anything itself. A burst of completions shares one
/// kick, and a finished command is never held back behind a slow one for long: at most until
/// the next completion of the same ring.
/// </summary>
public sealed unsafe class RingEventLoop : IDisposable
{
    public const int CompletionsPerKick = 32;

    /// <summary>Longest a completion waits for a kick when its worker left the kick to a later
    /// completion of the same ring (milliseconds, the epoll_wait granularity).</summary>
    public const int KickDelayMilliseconds = 1;
    private const ulong WakeToken = 0;
    private const int MaxEvents = 64;

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
        public bool Scheduled;                           // in the run queue; under loop._sched
        public int SinceKick;                            // under loop._sched
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
    private readonly Action<TcmuRing, string>? _ringLost;
    private readonly Lock _registry = new();
    private readonly Dictionary<ulong, RingContext> _byToken = new();
    private readonly Dictionary<TcmuRing, RingContext> _byRing = new(ReferenceEqualityComparer.Instance);
    private readonly ConcurrentQueue<RingContext> _serviceRequests = new();
    private readonly object _sched = new();
    private readonly Queue<RingContext> _runQueue = new();
    private readonly Thread _loopThread;
    private readonly Thread[] _workers;
    private ulong _nextToken;
    private volatile bool _stopping;
    private bool _workersExit;
    private int _stopped;
    private int _deferredKicks;     // 1: some worker left completions unkicked
    private int _loopWaitsForever;  // 1: the loop is (about to be) in epoll_wait without timeout
    private bool _disposed;

    /// <param name="workerCount">Threads that execute commands; default 2 × processors.</param>
    /// <param name="maxRunningPerRing">Most workers one ring may hold at once; default workers − 1 (at least 1).</param>
    /// <param name="ringLost">Called once per ring that stops being served (device gone, ring failed,
    /// kick failed), on the loop or a worker thread. Call <see cref="Remove"/> afterwards, from
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
        var ev = new EpollEvent { Events = Libc.EPOLLIN, Data = WakeToken };
        if (Libc.epoll_ctl(_epoll, Libc.EPOLL_CTL_ADD, _wake, &ev) < 0)
        {
            var e = Errno("epoll_ctl(ADD eventfd)");
            Libc.close(_wake);
            Libc.close(_epoll);
            throw e;
        }

        _loopThread = new Thread(Run) { IsBackground = true, Name = "tcmu-ring-loop" };
        _workers = new Thread[WorkerCount];
        for (int i = 0; i < _workers.Length; i++)
            _workers[i] = new Thread(Work) { IsBackground = true, Name = $"tcmu-worker-{i}" };
        _loopThread.Start();
        foreach (var w in _workers) w.Start();
    }

    public int WorkerCount { get; }
    public int MaxRunningPerRing { get; }

    public int RingCount
    {
        get { lock (_registry) return _byRing.Count; }
    }

    /// <summary>Starts serving <paramref name="ring"/>: its <paramref name="source"/> fd joins the
    /// epoll set and the ring is drained once at once (a fresh UIO fd is not readable for work
    /// queued before it was opened).</summary>
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
        var ev = new EpollEvent { Events = Libc.EPOLLIN, Data = ctx.Token };
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
    /// did not finish within <paramref name="timeout"/>; then the mapping must not be unmapped.
    /// Not from the loop thread (it would stall every ring).
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
    /// rather than the BUSY that blocked commands get (tcmu-abi.md §4.9, §4.10). Returns false
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
        if (Thread.CurrentThread == _loopThread) throw new InvalidOperationException("Stop cannot run on the loop thread");
        if (Interlocked.Exchange(ref _stopped, 1) != 0) return true;
        var deadline = DateTime.UtcNow + timeout;
        _stopping = true;
        Wake();
        _loopThread.Join();

        RingContext[] all;
        lock (_registry) all = _byRing.Values.ToArray();
        bool idle = true;
        foreach (var ctx in all)
            idle &= WaitIdle(ctx, deadline);
        foreach (var ctx in all)
            FlushQuietly(ctx);

        lock (_sched)
        {
            _workersExit = true;
            Monitor.PulseAll(_sched);
        }
        foreach (var w in _workers)
        {
            var left = deadline - DateTime.UtcNow;
            if (!w.Join(left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(100)))
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
    }

    private void Run()
    {
        var events = stackalloc EpollEvent[MaxEvents];
        long kickDeadline = 0; // Stopwatch timestamp; 0 = no deferred kick pending
        while (!_stopping)
        {
            int timeout = -1;
            if (kickDeadline == 0)
            {
                // Publish "waiting forever" before re-checking the flag (full fences on both sides),
                // so a worker deferring right now either sees this and wakes the loop or is seen here.
                Interlocked.Exchange(ref _loopWaitsForever, 1);
                if (Volatile.Read(ref _deferredKicks) != 0)
                    kickDeadline = Stopwatch.GetTimestamp() + KickDelayMilliseconds * Stopwatch.Frequency / 1000;
            }
            if (kickDeadline != 0)
            {
                Interlocked.Exchange(ref _loopWaitsForever, 0);
                long left = kickDeadline - Stopwatch.GetTimestamp();
                timeout = left <= 0 ? 0 : (int)Math.Max(1, left * 1000 / Stopwatch.Frequency);
            }
            int n = Libc.epoll_wait(_epoll, events, MaxEvents, timeout);
            Interlocked.Exchange(ref _loopWaitsForever, 0);
            if (kickDeadline != 0 && Stopwatch.GetTimestamp() >= kickDeadline)
            {
                kickDeadline = 0;
                Interlocked.Exchange(ref _deferredKicks, 0);
                FlushAll();
            }
            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EINTR) continue;
                Log.Error($"epoll_wait: {Libc.ErrorMessage(errno)}; ring event loop ends");
                return;
            }
            for (int i = 0; i < n && !_stopping; i++)
            {
                ulong token = events[i].Data;
                uint revents = events[i].Events;
                if (token == WakeToken)
                {
                    ulong value;
                    Libc.read(_wake, &value, sizeof(ulong));
                    continue;
                }
                RingContext? ctx;
                lock (_registry) _byToken.TryGetValue(token, out ctx);
                if (ctx == null) continue;
                if ((revents & ~Libc.EPOLLIN) != 0)
                {
                    // uio_poll reports everything, POLLERR/POLLHUP included, once the device is unregistered (§2.4).
                    Lose(ctx, $"device gone (epoll events 0x{revents:x})");
                    continue;
                }
                Service(ctx);
            }
            while (!_stopping && _serviceRequests.TryDequeue(out var requested))
                Service(requested);
        }
    }

    private void FlushAll()
    {
        lock (_registry)
        {
            foreach (var ctx in _byToken.Values)
            {
                if (!ctx.Ring.HasUnkickedCompletions) continue;
                try
                {
                    ctx.Ring.Flush();
                }
                catch (Exception e)
                {
                    // Lose takes _registry again (reentrant) and edits _byToken: defer it.
                    _serviceRequests.Enqueue(ctx);
                    Log.Debug($"{ctx.Ring.Name}: deferred kick failed: {e.Message}");
                }
            }
        }
    }

    private void Service(RingContext ctx)
    {
        string? lost = null;
        lock (ctx)
        {
            if (ctx.Detached) return;
            try
            {
                // Consume the event before draining: work queued after the drain raises a new one.
                ctx.Source.ConsumeEvent();
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
                    for (int i = 0; i < Math.Min(added, WorkerCount); i++)
                        Monitor.Pulse(_sched);
                }
                Array.Clear(ctx.Pending, 0, added);
                ctx.PendingCount = 0;
            }
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
            // Any status will do: the core marked the command aborted (§9).
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

    private void Work()
    {
        while (true)
        {
            RingContext ctx;
            ScsiCommand command;
            lock (_sched)
            {
                while (true)
                {
                    if (_workersExit) return;
                    if (_runQueue.Count == 0)
                    {
                        Monitor.Wait(_sched);
                        continue;
                    }
                    ctx = _runQueue.Dequeue();
                    ctx.Scheduled = false;
                    if (ctx.Queue.Count == 0 || ctx.Running >= MaxRunningPerRing) continue;
                    command = ctx.Queue.Dequeue();
                    ctx.Running++;
                    // Back to the end of the line: the next command of this ring waits for the other rings' turn.
                    if (Schedule(ctx)) Monitor.Pulse(_sched);
                    break;
                }
            }

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

            bool kick;
            lock (_sched)
            {
                ctx.Running--;
                if (Schedule(ctx)) Monitor.Pulse(_sched);
                kick = ctx.Queue.Count == 0 || ++ctx.SinceKick >= CompletionsPerKick;
                if (kick) ctx.SinceKick = 0;
            }
            if (!kick)
            {
                // More of this ring is queued, so a later completion will usually carry this one
                // along. If that later command is slow, the loop kicks after KickDelay anyway.
                if (Interlocked.Exchange(ref _deferredKicks, 1) == 0 && Volatile.Read(ref _loopWaitsForever) != 0)
                    Wake();
            }
            else
            {
                try
                {
                    ctx.Ring.Flush();
                }
                catch (Exception e)
                {
                    Lose(ctx, $"kick failed: {e.Message}");
                }
            }
        }
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
        // Polls instead of waiting on _sched, so that a Pulse meant for a worker is never taken
        // by a waiter here. Stop and Remove are rare.
        while (true)
        {
            lock (_sched)
            {
                if (ctx.Running == 0 && ctx.Queue.Count == 0) return true;
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

    private void Wake()
    {
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
