using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Linux.Tcmu;

public sealed unsafe partial class RingEventLoop
{
    private readonly Lock _sched = new();
    private readonly Queue<RingContext> _runQueue = new();
    private int _executing;         // commands running now; under _sched

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
                // A ring whose commands go to their store and return (RBD) is back to this
                // thread in microseconds: waking another one for it costs more than it saves.
                more = _runQueue.Count > 0 && _executing < WorkerCount
                    && !(ctx.HandsOff && _runQueue.Count == 1 && ctx.Scheduled);
                break;
            }
        }
        if (more)
        {
            // A standing-by thread if there is one; else one asleep in epoll; else a parked one.
            if (Volatile.Read(ref _standingBy) > 0) WakeStandby();
            else if (Volatile.Read(ref _polling) == 0 && Volatile.Read(ref _parked) > 0) WakeParked();
            else Wake();
        }
        return true;
    }

    /// <summary>Runs one command; false when it went to its store, which finishes it (<see cref="FinishedLater"/>).</summary>
    private bool Execute(RingContext ctx, ScsiCommand command)
    {
        bool finished = true;
        command.Completion = ctx;
        try
        {
            finished = ctx.Executor.Execute(command);
        }
        catch (Exception e)
        {
            Log.Error($"{ctx.Ring.Name}: command {command.OperationCode:X2}h failed: {e}");
            command.CheckCondition(SenseCode.InternalTargetFailure);
        }
        if (finished) ctx.Ring.Complete(command); // the command is back in the pool: do not touch it again

        // A command left with the store frees its run slot now: it holds no thread.
        lock (_sched)
        {
            ctx.HandsOff = !finished;
            ctx.Running--;
            _executing--;
            Schedule(ctx);
        }
        if (finished) Kick(ctx);
        return finished;
    }

    /// <summary>
    /// <see cref="ICommandCompletion.Finished"/> of a command that the store finished on its own
    /// thread after <see cref="Execute"/> returned: completed and kicked there, like one that
    /// finished at once. Its <see cref="RingContext.Users"/> count, taken in
    /// <see cref="TryTake"/>, ends only after the kick, so Remove and Stop wait for it.
    /// </summary>
    private void FinishedLater(RingContext ctx, ScsiCommand command)
    {
        ctx.Ring.Complete(command);
        Kick(ctx);
    }

    /// <summary>Kicks after a command's completion and lets the ring go (<see cref="RingContext.Users"/>).</summary>
    private void Kick(RingContext ctx)
    {
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

    private bool HasRunnableWork()
    {
        lock (_sched) return _runQueue.Count > 0 && _executing < WorkerCount;
    }
}
