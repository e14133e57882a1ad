using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Pipes;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;
using static TcmuSharedVolume.Tests.Tcmu.RingTestKit;

namespace TcmuSharedVolume.Tests.Tcmu;

public class RingEventLoopTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(20);

    private static List<(RingSimulator.Submitted S, uint Lba, bool Read)> SubmitMix(SimulatedDevice device, int count, uint firstLba)
    {
        var submitted = new List<(RingSimulator.Submitted, uint, bool)>();
        for (int i = 0; i < count; i++)
        {
            uint lba = firstLba + (uint)i;
            bool read = i % 2 == 0;
            var s = read
                ? device.Sim.Submit(Read10(lba, 8), dataInLength: 4096, fragment: i % 3 == 0)
                : device.Sim.Submit(Write10(lba, 8), dataOut: PatternExecutor.PatternFor(lba, 4096), fragment: i % 3 == 0);
            submitted.Add((s, lba, read));
        }
        return submitted;
    }

    private static void AssertAnswered(SimulatedDevice device, IEnumerable<(RingSimulator.Submitted S, uint Lba, bool Read)> submitted)
    {
        foreach (var (s, lba, read) in submitted)
        {
            var done = device.Sim.ForTicket(s.Ticket);
            Assert.NotNull(done);
            Assert.Equal((byte)ScsiStatus.Good, done.Status);
            if (read) Assert.Equal(PatternExecutor.PatternFor(lba, 4096), done.DataIn);
        }
        Assert.Null(device.Sim.BrokenReason);
    }

    [Fact]
    public void Serves128RingsAddedAndRemovedWhileRunning()
    {
        var lost = new ConcurrentQueue<string>();
        using var loop = new RingEventLoop(workerCount: 4, ringLost: (r, why) => lost.Enqueue(r.Name + ": " + why));
        var devices = Enumerable.Range(0, 128).Select(i => new SimulatedDevice($"ring{i}")).ToArray();
        var executor = new PatternExecutor();
        var work = new List<(RingSimulator.Submitted, uint, bool)>[128];
        try
        {
            for (int i = 0; i < 64; i++) loop.Add(devices[i].Ring, devices[i].Source, executor);
            for (int i = 0; i < 64; i++) work[i] = SubmitMix(devices[i], 8, (uint)i * 100);
            // The other half joins while the first half is being served.
            for (int i = 64; i < 128; i++)
            {
                work[i] = SubmitMix(devices[i], 8, (uint)i * 100); // queued before Add: the first drain finds it
                loop.Add(devices[i].Ring, devices[i].Source, executor);
            }
            Assert.Equal(128, loop.RingCount);
            for (int i = 0; i < 128; i++)
                Assert.True(devices[i].Sim.WaitForCompletions(8, Long), $"ring {i}: {devices[i].Sim.CompletedCount} of 8");
            for (int i = 0; i < 128; i++) AssertAnswered(devices[i], work[i]);

            // Remove a quarter; the rest keep working, the removed ones are no longer drained.
            for (int i = 0; i < 128; i += 4) Assert.True(loop.Remove(devices[i].Ring, Long));
            Assert.Equal(96, loop.RingCount);
            for (int i = 0; i < 128; i++) work[i] = SubmitMix(devices[i], 4, 50_000 + (uint)i);
            for (int i = 0; i < 128; i++)
            {
                if (i % 4 == 0) continue;
                Assert.True(devices[i].Sim.WaitForCompletions(12, Long));
                AssertAnswered(devices[i], work[i]);
            }
            for (int i = 0; i < 128; i += 4)
                Assert.Equal(8, devices[i].Sim.CompletedCount);
            Assert.Empty(lost);
            Assert.True(loop.Stop(Long));
        }
        finally
        {
            loop.Dispose();
            foreach (var d in devices) d.Dispose();
        }
    }

    [Fact]
    public void OneSlowRingDoesNotStallTheOthers()
    {
        using var slow = new SimulatedDevice("slow");
        using var fast = new SimulatedDevice("fast");
        using var gate = new ManualResetEventSlim(false);
        using var loop = new RingEventLoop(workerCount: 4);
        var slowExecutor = new PatternExecutor { BeforeExecute = _ => gate.Wait() };
        var fastExecutor = new PatternExecutor();
        try
        {
            loop.Add(slow.Ring, slow.Source, slowExecutor);
            loop.Add(fast.Ring, fast.Source, fastExecutor);
            SubmitMix(slow, 8, 0);
            Assert.True(Wait.Until(() => Volatile.Read(ref slowExecutor.Running) == loop.MaxRunningPerRing));

            var work = SubmitMix(fast, 12, 1000);
            Assert.True(fast.Sim.WaitForCompletions(12, Long));
            AssertAnswered(fast, work);
            Assert.Equal(0, slow.Sim.CompletedCount);
            Assert.Equal(loop.MaxRunningPerRing, Volatile.Read(ref slowExecutor.Running)); // never more than its share
        }
        finally
        {
            gate.Set();
        }
        Assert.True(slow.Sim.WaitForCompletions(8, Long));
        Assert.True(loop.Stop(Long));
    }

    [Fact]
    public void NeverRunsMoreThanWorkerCountCommands_AndTaskManagementStillGetsThrough()
    {
        // Three rings, every command held: only WorkerCount run, the rest wait in their queues;
        // the loop's spare thread still drains a TMR and aborts a queued command at once.
        var devices = new[] { new SimulatedDevice("r0"), new SimulatedDevice("r1"), new SimulatedDevice("r2") };
        using var gate = new ManualResetEventSlim(false);
        using var loop = new RingEventLoop(workerCount: 2, maxRunningPerRing: 2);
        int running = 0, peak = 0;
        var executor = new PatternExecutor
        {
            BeforeExecute = _ =>
            {
                int now = Interlocked.Increment(ref running);
                int seen;
                while ((seen = Volatile.Read(ref peak)) < now && Interlocked.CompareExchange(ref peak, now, seen) != seen) { }
                gate.Wait();
                Interlocked.Decrement(ref running);
            },
        };
        try
        {
            var work = new List<(SimulatedDevice D, List<(RingSimulator.Submitted S, uint Lba, bool Read)> W)>();
            foreach (var d in devices)
            {
                loop.Add(d.Ring, d.Source, executor);
                work.Add((d, SubmitMix(d, 4, (uint)work.Count * 100)));
            }
            Assert.True(Wait.Until(() => Volatile.Read(ref running) == 2));
            Thread.Sleep(100); // room for a third to start, if the loop let it
            Assert.Equal(2, Volatile.Read(ref peak));

            var victim = work[2].W[3].S;
            Assert.True(devices[2].Sim.TrySubmitTmr((byte)TmrType.AbortTask, [victim.CmdId]));
            Assert.True(devices[2].Sim.WaitForCompletions(1, Long));
            Assert.Equal((byte)ScsiStatus.TaskAborted, devices[2].Sim.ForTicket(victim.Ticket)!.Status);

            gate.Set();
            foreach (var (d, w) in work)
            {
                bool isR2 = ReferenceEquals(d, devices[2]);
                Assert.True(d.Sim.WaitForCompletions(4, Long));
                AssertAnswered(d, isR2 ? w.Take(3) : w);
            }
            Assert.Equal(2, Volatile.Read(ref peak));
            Assert.True(loop.Stop(Long));
        }
        finally
        {
            gate.Set();
            foreach (var d in devices) d.Dispose();
        }
    }

    [Fact]
    public void AbortTaskCompletesAQueuedCommandAtOnce_AndTellsTheExecutor()
    {
        using var device = new SimulatedDevice("abort");
        using var gate = new ManualResetEventSlim(false);
        using var loop = new RingEventLoop(workerCount: 1);
        var executor = new PatternExecutor { BeforeExecute = _ => gate.Wait() };
        try
        {
            loop.Add(device.Ring, device.Source, executor);
            var running = device.Sim.Submit(Read10(1, 8), dataInLength: 4096);
            Assert.True(Wait.Until(() => Volatile.Read(ref executor.Running) == 1));
            var queued = device.Sim.Submit(Read10(2, 8), dataInLength: 4096);
            var other = device.Sim.Submit(Read10(3, 8), dataInLength: 4096);
            Assert.True(device.Sim.TrySubmitTmr((byte)TmrType.AbortTask, [queued.CmdId]));

            Assert.True(device.Sim.WaitForCompletions(1, Long));
            Assert.Equal((byte)ScsiStatus.TaskAborted, device.Sim.ForTicket(queued.Ticket)!.Status);
            Assert.Null(device.Sim.ForTicket(running.Ticket));
            Assert.True(Wait.Until(() => !executor.Tmrs.IsEmpty));
            Assert.True(executor.Tmrs.TryDequeue(out var tmr));
            Assert.Equal(TmrType.AbortTask, tmr.Type);
            Assert.Equal([queued.CmdId], tmr.Ids);

            gate.Set();
            Assert.True(device.Sim.WaitForCompletions(3, Long));
            Assert.Equal((byte)ScsiStatus.Good, device.Sim.ForTicket(running.Ticket)!.Status);
            Assert.Equal((byte)ScsiStatus.Good, device.Sim.ForTicket(other.Ticket)!.Status);
            Assert.Equal(2, executor.Executed);
        }
        finally
        {
            gate.Set();
        }
    }

    [Fact]
    public void LunResetAbortsQueuedCommands_AndRunningOnesCompleteNormally()
    {
        using var device = new SimulatedDevice("reset");
        using var gate = new ManualResetEventSlim(false);
        using var loop = new RingEventLoop(workerCount: 1);
        var executor = new PatternExecutor { BeforeExecute = _ => gate.Wait() };
        try
        {
            loop.Add(device.Ring, device.Source, executor);
            var running = device.Sim.Submit(Read10(1, 8), dataInLength: 4096);
            Assert.True(Wait.Until(() => Volatile.Read(ref executor.Running) == 1));
            var q1 = device.Sim.Submit(Read10(2, 8), dataInLength: 4096);
            var q2 = device.Sim.Submit(Write10(3, 8), dataOut: PatternExecutor.PatternFor(3, 4096));
            Assert.True(device.Sim.TrySubmitTmr((byte)TmrType.LunReset, [running.CmdId, q1.CmdId, q2.CmdId]));

            Assert.True(device.Sim.WaitForCompletions(2, Long));
            Assert.Equal((byte)ScsiStatus.TaskAborted, device.Sim.ForTicket(q1.Ticket)!.Status);
            Assert.Equal((byte)ScsiStatus.TaskAborted, device.Sim.ForTicket(q2.Ticket)!.Status);
            Assert.True(Wait.Until(() => executor.Tmrs.TryPeek(out var t) && t.Type == TmrType.LunReset));

            gate.Set();
            Assert.True(device.Sim.WaitForCompletions(3, Long));
            Assert.Equal((byte)ScsiStatus.Good, device.Sim.ForTicket(running.Ticket)!.Status);
            Assert.Equal(1, executor.Executed);
            Assert.Null(device.Sim.BrokenReason);
        }
        finally
        {
            gate.Set();
        }
    }

    [Fact]
    public void ABurstOfCompletionsIsAnsweredWithAtMostOneKickEach()
    {
        using var device = new SimulatedDevice("burst", dataBlocks: 64);
        using var loop = new RingEventLoop(workerCount: 2);
        var work = SubmitMix(device, 48, 0); // queued before Add: one drain takes them all
        loop.Add(device.Ring, device.Source, new PatternExecutor());
        // Each completion is kicked as it is written, so the kernel sees all of them without the
        // loop being stopped or anything else arriving.
        Assert.True(device.Sim.WaitForCompletions(48, Long));
        AssertAnswered(device, work);
        Assert.InRange(device.Notifier.Kicks, 1, 48);
        Assert.True(loop.Stop(Long));
        Assert.Equal(device.Notifier.Kicks, device.Ring.Kicks);
    }

    [Fact]
    public void AFinishedCommandIsNotHeldBackBehindASlowOneOfTheSameRing()
    {
        // Two workers, one per ring at a time: the fast READ runs, the slow one waits in the queue,
        // so the fast one's worker leaves the kick to later; the loop must kick it anyway.
        using var device = new SimulatedDevice("mixed");
        using var gate = new ManualResetEventSlim(false);
        using var loop = new RingEventLoop(workerCount: 2, maxRunningPerRing: 1);
        // The "fast" one still takes long enough that the loop's own kick after the drain is over.
        var executor = new PatternExecutor { BeforeExecute = c => { if (c.Cdb[5] == 2) gate.Wait(); else Thread.Sleep(30); } };
        try
        {
            loop.Add(device.Ring, device.Source, executor);
            device.Quiet = true;
            var fast = device.Sim.Submit(Read10(1, 8), dataInLength: 4096);
            var slow = device.Sim.Submit(Read10(2, 8), dataInLength: 4096);
            device.Source.Signal();
            Assert.True(device.Sim.WaitForCompletions(1, TimeSpan.FromSeconds(5)));
            Assert.Equal((byte)ScsiStatus.Good, device.Sim.ForTicket(fast.Ticket)!.Status);
            Assert.Null(device.Sim.ForTicket(slow.Ticket));
            gate.Set();
            Assert.True(device.Sim.WaitForCompletions(2, Long));
        }
        finally
        {
            gate.Set();
        }
    }

    [Fact]
    public void WhileASlowCommandRuns_OnlyTheWatchWakesOnATimer()
    {
        // Eight workers: a burst leaves every thread that ran a fast command standing by behind
        // one slow command. Only one of them may poll on a timer; the rest sleep until there is
        // work (each of them waking every StandbyMilliseconds is what a big machine with a slow
        // disk must not do).
        using var device = new SimulatedDevice("slowdisk");
        using var gate = new ManualResetEventSlim(false);
        using var loop = new RingEventLoop(workerCount: 8);
        var executor = new PatternExecutor { BeforeExecute = c => { if (c.Cdb[5] == 0) gate.Wait(); } };
        try
        {
            SubmitMix(device, 16, 0); // LBA 0 is the slow one; queued before Add, one drain takes all
            loop.Add(device.Ring, device.Source, executor);
            Assert.True(device.Sim.WaitForCompletions(15, Long));
            Assert.Equal(1, Volatile.Read(ref executor.Running));
            Thread.Sleep(50); // the threads that ran fast commands settle into standing by

            long before = loop.StandbyWakeups;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            Thread.Sleep(300);
            long woke = loop.StandbyWakeups - before;
            double bound = clock.Elapsed.TotalMilliseconds / RingEventLoop.StandbyMilliseconds + 3;
            Assert.True(woke <= bound, $"{woke} wake-ups in {clock.ElapsedMilliseconds} ms (at most {bound:F0} for one watch)");
        }
        finally
        {
            gate.Set();
        }
        Assert.True(device.Sim.WaitForCompletions(16, Long));
        Assert.True(loop.Stop(Long));
    }

    [Fact]
    public void WhenTheWatchTakesASlowCommand_AnotherThreadKeepsWatch()
    {
        // Three workers (four threads), one command per ring at a time. Ring A's command hangs;
        // a burst on ring F leaves the three other threads standing by (one watch, two asleep).
        // B's and C's commands then arrive with nobody in epoll: the watch finds B's and runs it,
        // and someone must still notice C's, and after that an ABORT TASK on A.
        using var a = new SimulatedDevice("a");
        using var b = new SimulatedDevice("b");
        using var c = new SimulatedDevice("c");
        using var f = new SimulatedDevice("f");
        using var gate = new ManualResetEventSlim(false);
        using var loop = new RingEventLoop(workerCount: 3, maxRunningPerRing: 1);
        var slow = new PatternExecutor { BeforeExecute = _ => gate.Wait() };
        try
        {
            loop.Add(a.Ring, a.Source, slow);
            loop.Add(b.Ring, b.Source, slow);
            loop.Add(c.Ring, c.Source, slow);
            loop.Add(f.Ring, f.Source, new PatternExecutor());
            SubmitMix(a, 1, 0);
            Assert.True(Wait.Until(() => Volatile.Read(ref slow.Running) == 1));
            SubmitMix(f, 8, 100);
            Assert.True(f.Sim.WaitForCompletions(8, Long));
            Thread.Sleep(20);

            SubmitMix(b, 1, 200);
            Assert.True(Wait.Until(() => Volatile.Read(ref slow.Running) == 2, 5_000), "B's command was not noticed");
            SubmitMix(c, 1, 300);
            Assert.True(Wait.Until(() => Volatile.Read(ref slow.Running) == 3, 5_000), "C's command was not noticed");

            var queued = a.Sim.Submit(Read10(400, 8), dataInLength: 4096); // waits: A runs one at a time
            Assert.True(a.Sim.TrySubmitTmr((byte)TmrType.AbortTask, [queued.CmdId]));
            Assert.True(a.Sim.WaitForCompletions(1, TimeSpan.FromSeconds(5)), "the ABORT TASK was not served");
            Assert.Equal((byte)ScsiStatus.TaskAborted, a.Sim.ForTicket(queued.Ticket)!.Status);
        }
        finally
        {
            gate.Set();
        }
        foreach (var d in new[] { a, b, c })
            Assert.True(d.Sim.WaitForCompletions(d == a ? 2 : 1, Long));
        Assert.True(loop.Stop(Long));
    }

    [Fact]
    public unsafe void DeviceGoneIsReported_AndTheRingCanBeRemoved()
    {
        var lost = new ConcurrentQueue<(TcmuRing Ring, string Why)>();
        using var device = new SimulatedDevice("gone");
        using var loop = new RingEventLoop(workerCount: 2, ringLost: (r, why) => lost.Enqueue((r, why)));
        var writer = new AnonymousPipeServerStream(PipeDirection.Out);
        using var readEnd = writer.ClientSafePipeHandle;
        var source = new PipeSource((int)readEnd.DangerousGetHandle());
        loop.Add(device.Ring, source, new PatternExecutor());

        writer.Dispose(); // the write end closes: EPOLLHUP on the read end, as uio_poll after unregister
        Assert.True(Wait.Until(() => !lost.IsEmpty));
        Assert.True(lost.TryDequeue(out var report));
        Assert.Same(device.Ring, report.Ring);
        Assert.Contains("device gone", report.Why);
        Assert.True(loop.Remove(device.Ring, Long));
        Assert.Equal(0, loop.RingCount);
    }

    private sealed class PipeSource(int fd) : IRingEventSource
    {
        public int Fd => fd;
    }

    [Fact]
    public void FailedRingIsReported_AndOtherRingsGoOn()
    {
        var lost = new ConcurrentQueue<string>();
        using var broken = new SimulatedDevice("broken");
        using var healthy = new SimulatedDevice("healthy");
        using var loop = new RingEventLoop(workerCount: 2, ringLost: (r, why) => lost.Enqueue(r.Name + " " + why));
        loop.Add(broken.Ring, broken.Source, new PatternExecutor());
        loop.Add(healthy.Ring, healthy.Source, new PatternExecutor());
        // A header of length 0: the framing is lost.
        Assert.True(broken.Sim.TrySubmitRaw(128, RingSimulator.OpCmd, (e, _) => BinaryPrimitives.WriteUInt32LittleEndian(e, 1), trackId: true, out _));
        Assert.True(Wait.Until(() => !lost.IsEmpty));
        Assert.Contains("broken ring failed", lost.Single());

        var work = SubmitMix(healthy, 6, 0);
        Assert.True(healthy.Sim.WaitForCompletions(6, Long));
        AssertAnswered(healthy, work);
    }

    [Fact]
    public void ExecutorExceptionBecomesHardwareError()
    {
        using var device = new SimulatedDevice("throws");
        using var loop = new RingEventLoop(workerCount: 2);
        var executor = new PatternExecutor { Throw = c => BinaryPrimitives.ReadUInt32BigEndian(c.Cdb.Slice(2)) == 7 };
        loop.Add(device.Ring, device.Source, executor);
        var bad = device.Sim.Submit(Read10(7, 8), dataInLength: 4096);
        var good = device.Sim.Submit(Read10(8, 8), dataInLength: 4096);
        Assert.True(device.Sim.WaitForCompletions(2, Long));
        var answer = device.Sim.ForTicket(bad.Ticket)!;
        Assert.Equal((byte)ScsiStatus.CheckCondition, answer.Status);
        Assert.Equal(SenseCode.InternalTargetFailure, SenseOf(answer));
        Assert.Equal((byte)ScsiStatus.Good, device.Sim.ForTicket(good.Ticket)!.Status);
    }

    [Fact]
    public void StopLetsQueuedAndRunningCommandsFinish_ThenRefusesNewRings()
    {
        var loop = new RingEventLoop(workerCount: 2);
        using var device = new SimulatedDevice("stop");
        var executor = new PatternExecutor { BeforeExecute = _ => Thread.Sleep(50) };
        loop.Add(device.Ring, device.Source, executor);
        var work = SubmitMix(device, 6, 0);
        // Every command drained (handed out), some still queued or running.
        Assert.True(Wait.Until(() => device.Ring.Outstanding + device.Ring.Completions == 6));
        Assert.True(device.Ring.Outstanding > 0);
        Assert.True(loop.Stop(Long));
        Assert.Equal(6, device.Sim.CompletedCount);
        AssertAnswered(device, work);

        using var late = new SimulatedDevice("late");
        Assert.Throws<InvalidOperationException>(() => loop.Add(late.Ring, late.Source, executor));
        loop.Dispose();
    }

    [Fact]
    public void QuiesceServesEntriesWhoseEventWasNotSeen_SoStopLeavesAnEmptyRing()
    {
        var loop = new RingEventLoop(workerCount: 2);
        using var device = new SimulatedDevice("quiesce");
        var executor = new PatternExecutor { BeforeExecute = _ => Thread.Sleep(20) };
        loop.Add(device.Ring, device.Source, executor);
        // Published by the kernel, uio event not yet delivered: what a stopping daemon finds.
        device.Quiet = true;
        var work = SubmitMix(device, 6, 0);
        Assert.True(device.Ring.HasUnreadEntries);

        Assert.True(loop.Quiesce(Long));
        Assert.False(device.Ring.HasUnreadEntries);
        Assert.Equal(0, device.Ring.Outstanding);
        Assert.Equal(6, device.Sim.CompletedCount); // completed and kicked before Stop
        Assert.True(loop.Stop(Long));
        AssertAnswered(device, work);
        loop.Dispose();
    }

    [Fact]
    public void QuiesceGivesUpAtItsTimeout_WhenACommandIsStuck()
    {
        using var release = new ManualResetEventSlim();
        var loop = new RingEventLoop(workerCount: 2);
        using var device = new SimulatedDevice("stuck");
        loop.Add(device.Ring, device.Source, new PatternExecutor { BeforeExecute = _ => release.Wait() });
        device.Sim.Submit(Read10(0, 8), dataInLength: 4096);

        Assert.False(loop.Quiesce(TimeSpan.FromMilliseconds(300)));
        Assert.Equal(1, device.Ring.Outstanding);
        release.Set();
        Assert.True(loop.Quiesce(Long));
        Assert.True(loop.Stop(Long));
        loop.Dispose();
    }
}
