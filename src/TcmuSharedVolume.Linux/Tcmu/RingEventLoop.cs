using System.Runtime.InteropServices;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Interop;

namespace TcmuSharedVolume.Linux.Tcmu;

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
/// A READ or WRITE on a store that finishes it on its own thread (Ceph RBD) leaves its run slot
/// when the request is started: the store's thread completes and kicks it
/// (<see cref="ICommandExecutor.Execute"/> returns false), so such commands in flight are as
/// many as the kernel queues, not as many as there are workers; the ring stays in use
/// (<see cref="Remove"/>, <see cref="Stop"/>) until the last of them is kicked.
/// With nothing running, at most two threads wait in epoll; the others park on a private eventfd
/// until those two are both at work. epoll wakes its waiters in turn, so with every idle thread
/// in epoll a stream of commands that each take microseconds (RBD's, above) rotated through all
/// of them, each woken cold; with two, the same two warm threads take them (measured on RBD at
/// queue depth 32: 15 % less CPU per command).
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
public sealed unsafe partial class RingEventLoop : IDisposable
{
    private const ulong WakeToken = 0;
    private const int MaxEvents = 64;

    [ThreadStatic] private static RingEventLoop? t_servedBy;

    private readonly int _epoll;
    private readonly int _wake;
    private readonly Thread[] _threads;
    private volatile bool _stopping;
    private volatile bool _threadsExit;
    private int _stopped;
    private int _servicing;         // threads inside Service (drains), for Stop
    private bool _disposed;

    /// <param name="workerCount">Commands that may run at once; default 2 × processors. The loop has
    /// one thread more.</param>
    /// <param name="maxRunningPerRing">Most commands one ring may run at once; default workers − 1 (at least 1).</param>
    /// <param name="ringLost">Called once per ring that stops being served (device gone, ring failed,
    /// kick failed), on one of the loop's threads or on the thread of a store that finished a
    /// command (librbd's: its kick failed). Keep it short. Call <see cref="Remove"/> afterwards, from
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
        _parkEpoll = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
        _park = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        var sev = new EpollEvent { Events = Libc.EPOLLIN | Libc.EPOLLET, Data = WakeToken };
        if (_standbyEpoll < 0 || _standby < 0 || _watchEpoll < 0 || _watchWake < 0 || _parkEpoll < 0 || _park < 0
            || Libc.epoll_ctl(_standbyEpoll, Libc.EPOLL_CTL_ADD, _standby, &sev) < 0
            || Libc.epoll_ctl(_watchEpoll, Libc.EPOLL_CTL_ADD, _watchWake, &sev) < 0
            || Libc.epoll_ctl(_parkEpoll, Libc.EPOLL_CTL_ADD, _park, &sev) < 0)
        {
            var e = Errno("standby eventfd/epoll");
            foreach (int fd in new[] { _park, _parkEpoll, _watchWake, _watchEpoll, _standby, _standbyEpoll, _wake, _epoll })
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
        WakeParked();
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
        Libc.close(_park);
        Libc.close(_parkEpoll);
    }

    /// <summary>Every thread: run queued commands while there are any it may take, else collect
    /// events; sleep in epoll (at most two threads, the others park) only when no command runs or
    /// this thread's last one went to its store, else stand by.</summary>
    private void Work()
    {
        t_servedBy = this;
        var events = stackalloc EpollEvent[MaxEvents];
        bool handedOff = false;
        while (true)
        {
            if (TryTake(out var ctx, out var command))
            {
                // If this thread was the watch, the others standing by sleep without a timeout:
                // one of them takes the watch over (full fences order this against StandBy). With
                // no thread in epoll either, a parked one does.
                if (Volatile.Read(ref _watching) == 0)
                {
                    if (Volatile.Read(ref _standingBy) > 0) WakeStandby();
                    else if (Volatile.Read(ref _polling) == 0 && Volatile.Read(ref _parked) > 0) WakeParked();
                }
                handedOff = !Execute(ctx, command);
                continue;
            }
            if (_threadsExit)
            {
                Interlocked.Exchange(ref _wakePending, 0);
                Interlocked.Exchange(ref _standbyWakePending, 0);
                Interlocked.Exchange(ref _watchWakePending, 0);
                Interlocked.Exchange(ref _parkWakePending, 0);
                Wake(); // the next thread leaves too
                WakeStandby();
                WakeWatch();
                WakeParked();
                return;
            }
            // A thread whose last command went to its store is as good as idle: what runs
            // elsewhere is most likely the same kind, back in microseconds, and a stream of such
            // commands needs a thread in epoll for each next one, not one standing by.
            if (Volatile.Read(ref _executing) == 0 || handedOff)
            {
                handedOff = false;
                // At most MaxPolling threads wait in epoll; the others park (Parking.cs).
                if (!TryEnterPolling())
                {
                    Park(events);
                    continue;
                }
                bool ok = Poll(events, block: true);
                LeavePolling();
                if (!ok) return;
                continue;
            }
            // Commands are running: take what has arrived without sleeping in epoll (where every
            // new command would wake us), then stand by until woken or StandbyMilliseconds pass.
            if (!Poll(events, block: false)) return;
            if (HasRunnableWork()) continue;
            StandBy(events);
        }
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

    private static IOException Errno(string what)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new IOException($"{what}: {Libc.ErrorMessage(errno)} (errno {errno})");
    }
}
