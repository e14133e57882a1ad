using System.Collections.Concurrent;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Linux.Tcmu;

public sealed unsafe partial class RingEventLoop
{
    private sealed class RingContext(RingEventLoop loop, TcmuRing ring, IRingEventSource source, ICommandExecutor executor, ulong token)
        : IRingConsumer, ICommandCompletion
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
        /// its kick is done (which is after <see cref="Running"/> drops; for a command the store
        /// finishes on its own thread, after that thread's kick), a drain until its kick.
        /// Interlocked. The mapping may be freed only when this is 0 and the ring is detached.</summary>
        public int Users;
        public bool Scheduled;                           // in the run queue; under loop._sched
        /// <summary>Its last command went to a store that finishes it on its own thread; under loop._sched.</summary>
        public bool HandsOff;
        public volatile bool Detached;

        public void OnCommand(ScsiCommand command)
        {
            if (PendingCount == Pending.Length) Array.Resize(ref Pending, Pending.Length * 2);
            Pending[PendingCount++] = command;
        }

        public void OnTaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds) => loop.TaskManagement(this, type, commandIds);

        public void Finished(ScsiCommand command) => loop.FinishedLater(this, command);
    }

    private readonly Action<TcmuRing, string>? _ringLost;
    private readonly Lock _registry = new();
    private readonly Dictionary<ulong, RingContext> _byToken = new();
    private readonly Dictionary<TcmuRing, RingContext> _byRing = new(ReferenceEqualityComparer.Instance);
    private readonly ConcurrentQueue<RingContext> _serviceRequests = new();
    private ulong _nextToken;

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
}
