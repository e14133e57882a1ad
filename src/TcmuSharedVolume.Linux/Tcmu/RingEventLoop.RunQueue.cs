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

    private bool HasRunnableWork()
    {
        lock (_sched) return _runQueue.Count > 0 && _executing < WorkerCount;
    }
}
