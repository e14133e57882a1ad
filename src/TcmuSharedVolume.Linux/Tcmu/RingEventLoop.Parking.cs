using TcmuSharedVolume.Interop;

namespace TcmuSharedVolume.Linux.Tcmu;

public sealed unsafe partial class RingEventLoop
{
    /// <summary>Longest a standing-by thread sleeps before it looks for events itself, while other
    /// threads run commands (which may all be slow).</summary>
    public const int StandbyMilliseconds = 2;

    private readonly int _standbyEpoll;   // only _standby in it
    private readonly int _standby;        // wakes one standing-by thread other than the watch
    private readonly int _watchEpoll;     // only _watchWake in it
    private readonly int _watchWake;      // wakes the watch
    private int _wakePending;       // 1: a wake was written to the eventfd and not taken yet
    private int _standingBy;        // threads standing by, the watch included
    private int _watching;          // 1: a standing-by thread keeps the watch
    private int _standbyWakePending;
    private int _watchWakePending;
    private long _standbyWakeups;   // standing-by threads that woke, for any reason

    /// <summary>Threads that may wait in epoll at once while nothing runs; the others park.</summary>
    private const int MaxPolling = 2;

    private readonly int _parkEpoll;      // only _park in it
    private readonly int _park;           // wakes one parked thread
    private int _polling;           // threads in (or entering) a blocking epoll_wait
    private int _parked;            // idle threads parked
    private int _parkWakePending;

    private bool TryEnterPolling()
    {
        while (true)
        {
            int n = Volatile.Read(ref _polling);
            if (n >= MaxPolling) return false;
            if (Interlocked.CompareExchange(ref _polling, n + 1, n) == n) return true;
        }
    }

    /// <summary>A thread leaves epoll (for work, or to stop). If it was the last one there, a
    /// parked thread takes its place, so that events are still collected while it works (full
    /// fences order this against <see cref="Park"/>'s re-check).</summary>
    private void LeavePolling()
    {
        if (Interlocked.Decrement(ref _polling) == 0 && Volatile.Read(ref _parked) > 0) WakeParked();
    }

    /// <summary>An idle thread while <see cref="MaxPolling"/> others wait in epoll: sleeps until
    /// woken (the last of them left epoll for work, more work than the working threads take, a
    /// watch to take over, stop). Those in epoll collect events meanwhile, commands running or not.</summary>
    private void Park(EpollEvent* events)
    {
        Interlocked.Increment(ref _parked);
        if (Volatile.Read(ref _polling) >= MaxPolling && !HasRunnableWork() && !_threadsExit)
            Libc.epoll_wait(_parkEpoll, events, 1, -1);
        Interlocked.Exchange(ref _parkWakePending, 0);
        Interlocked.Decrement(ref _parked);
    }

    private void WakeParked()
    {
        if (Interlocked.Exchange(ref _parkWakePending, 1) != 0) return;
        ulong one = 1;
        Libc.write(_park, &one, sizeof(ulong));
    }

    /// <summary>How many times a standing-by thread woke up (work, the watch's timeout, stop).</summary>
    internal long StandbyWakeups => Interlocked.Read(ref _standbyWakeups);

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
}
