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
            ctx.Running--;
            _executing--;
            Schedule(ctx);
        }
        if (finished) Kick(ctx);
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
