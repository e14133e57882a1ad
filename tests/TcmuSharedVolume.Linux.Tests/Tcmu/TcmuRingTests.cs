using System.Buffers.Binary;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;
using static TcmuSharedVolume.Tests.Tcmu.RingTestKit;

namespace TcmuSharedVolume.Tests.Tcmu;

public unsafe class TcmuRingTests
{
    [Fact]
    public void RejectsAMailboxItDoesNotUnderstand()
    {
        using var sim = new RingSimulator(cmdrSize: 4096 - 128, dataBlocks: 4);
        var notifier = new SimulatorNotifier(sim);

        *(ushort*)sim.Map = 1;
        Assert.Throws<InvalidDataException>(() => RingOver(sim, notifier));
        *(ushort*)sim.Map = 2;

        *(uint*)(sim.Map + 4) = 64;
        Assert.Throws<InvalidDataException>(() => RingOver(sim, notifier));
        *(uint*)(sim.Map + 4) = 128;

        *(uint*)(sim.Map + 8) = 4096 - 128 - 4; // not a multiple of 8
        Assert.Throws<InvalidDataException>(() => RingOver(sim, notifier));
        *(uint*)(sim.Map + 8) = (uint)sim.MapLength; // ring larger than the map
        Assert.Throws<InvalidDataException>(() => RingOver(sim, notifier));
        *(uint*)(sim.Map + 8) = sim.CmdrSize;

        using var ring = RingOver(sim, notifier);
        Assert.True(ring.SupportsOutOfOrderCompletion && ring.SupportsReadLen && ring.SupportsTmr);
        Assert.Equal(sim.DataOffset, ring.DataOffset);
    }

    [Fact]
    public void ReadGetsCdbTagAndDataInBuffer_AndTheKernelReceivesTheBytes()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        var cdb = Read10(lba: 77, blocks: 16);
        var submitted = sim.Submit(cdb, dataInLength: 8192);

        var consumer = new CollectingConsumer();
        Assert.Equal(1, ring.Drain(consumer));
        var command = Assert.Single(consumer.Commands);
        Assert.Equal(cdb, command.Cdb.ToArray());
        Assert.Equal(submitted.CmdId, command.TransportTag);
        Assert.Equal(8192, command.Data.Length);

        var answer = Pattern(8192, 1);
        Assert.Equal(8192, command.Data.CopyFrom(0, answer));
        command.Good();
        Assert.True(ring.Complete(command));
        Assert.Equal(0, sim.CompletedCount); // nothing reaped before the kick
        Assert.True(ring.Flush());

        var done = sim.ForTicket(submitted.Ticket)!;
        Assert.Equal((byte)ScsiStatus.Good, done.Status);
        Assert.Null(done.ReadLen); // whole buffer valid: no READ_LEN
        Assert.Equal(answer, done.DataIn);
        Assert.Null(sim.BrokenReason);
    }

    [Fact]
    public void FragmentedDataArrivesAsSeveralIovecsInOrder()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        var data = Pattern(3 * 4096 + 100, 2);
        sim.Submit(Write10(0, 25), dataOut: data, fragment: true);

        var consumer = new CollectingConsumer();
        ring.Drain(consumer);
        var command = Assert.Single(consumer.Commands);
        Assert.Equal(4, command.Data.Segments.Length);
        Assert.Equal(data.Length, command.Data.Length);
        var copy = new byte[data.Length];
        Assert.Equal(data.Length, command.Data.CopyTo(0, copy));
        Assert.Equal(data, copy);
        foreach (var segment in command.Data.Segments)
        {
            // Every segment lies inside the data area of the mapping.
            Assert.True(segment.Base >= (nint)(sim.Map + sim.DataOffset));
            Assert.True(segment.Base + segment.Length <= (nint)(sim.Map + sim.MapLength));
        }
        command.Good();
        ring.Complete(command);
        ring.Flush();
        Assert.Equal(1, sim.CompletedCount);
    }

    [Fact]
    public void WrapsAroundOverPadEntriesLikeTheKernel()
    {
        // A ring of 1 KiB takes 6 entries of 152 bytes; 40 commands wrap it several times, and
        // since 1024 is not a multiple of 152 every wrap goes through a PAD.
        using var rig = new RingRig(new RingSimulator(cmdrSize: 1024, dataBlocks: 8));
        var (sim, notifier, ring) = rig;
        int wraps = 0;
        uint lastHead = sim.Head;
        for (int i = 0; i < 40; i++)
        {
            var data = Pattern(512, i);
            var cdb = Write10((uint)i, 1);
            var s1 = sim.Submit(cdb, dataOut: data);
            var s2 = sim.Submit(Read10((uint)i, 1), dataInLength: 512);
            if (sim.Head < lastHead) wraps++;
            lastHead = sim.Head;

            var consumer = new CollectingConsumer();
            ring.Drain(consumer);
            Assert.Equal(2, consumer.Commands.Count);
            var write = consumer.Commands[0];
            var read = consumer.Commands[1];
            Assert.Equal(cdb, write.Cdb.ToArray());
            var got = new byte[512];
            write.Data.CopyTo(0, got);
            Assert.Equal(data, got);
            read.Data.CopyFrom(0, got);
            // Complete the read first: it steals the write's slot.
            read.Good();
            write.Good();
            ring.Complete(read);
            ring.Complete(write);
            ring.Flush();
            Assert.Equal(data, sim.ForTicket(s2.Ticket)!.DataIn);
            Assert.Equal((byte)ScsiStatus.Good, sim.ForTicket(s1.Ticket)!.Status);
        }
        Assert.True(wraps >= 5, $"only {wraps} wraps");
        Assert.Null(sim.BrokenReason);
        Assert.False(ring.IsFailed);
        Assert.Equal(80, sim.CompletedCount);
    }

    [Fact]
    public void OutOfOrderCompletionsReachTheRightCommands()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        var tickets = new long[6];
        for (int i = 0; i < 6; i++)
            tickets[i] = sim.Submit(Read10((uint)i, 1), dataInLength: 512).Ticket;
        var consumer = new CollectingConsumer();
        ring.Drain(consumer);
        Assert.Equal(6, consumer.Commands.Count);

        // A different outcome per command, so a completion landing on the wrong id shows.
        SenseCode[] codes =
        [
            SenseCode.LbaOutOfRange, SenseCode.InvalidFieldInCdb, SenseCode.UnrecoveredReadError,
            SenseCode.MediumNotPresent, SenseCode.InternalTargetFailure, SenseCode.WriteError,
        ];
        foreach (int i in new[] { 4, 1, 5, 0, 3, 2 })
        {
            consumer.Commands[i].CheckCondition(codes[i]);
            Assert.True(ring.Complete(consumer.Commands[i]));
            ring.Flush();
        }

        Assert.Equal(6, sim.CompletedCount);
        for (int i = 0; i < 6; i++)
        {
            var done = sim.ForTicket(tickets[i])!;
            Assert.Equal((byte)ScsiStatus.CheckCondition, done.Status);
            Assert.Equal(codes[i], SenseOf(done));
        }
        Assert.Equal(sim.Head, sim.CmdTail);
    }

    [Fact]
    public void ShortDataInUsesReadLen_WhenTheKernelOffersIt()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        var s = sim.Submit([0x12, 0, 0, 0x10, 0, 0], dataInLength: 4096); // INQUIRY, allocation length 4096
        var consumer = new CollectingConsumer();
        ring.Drain(consumer);
        var command = consumer.Commands[0];
        command.Data.CopyFrom(0, Pattern(36, 3));
        command.Good(36);
        ring.Complete(command);
        ring.Flush();

        var done = sim.ForTicket(s.Ticket)!;
        Assert.Equal(36u, done.ReadLen);
        Assert.Equal(Pattern(36, 3), done.DataIn);
    }

    [Fact]
    public void NoReadLenFlag_WithoutTheCapability()
    {
        using var rig = new RingRig(new RingSimulator(flags: 0x1)); // OOOC only
        var (sim, notifier, ring) = rig;
        var s = sim.Submit([0x12, 0, 0, 0x10, 0, 0], dataInLength: 4096);
        var consumer = new CollectingConsumer();
        ring.Drain(consumer);
        consumer.Commands[0].Good(36);
        ring.Complete(consumer.Commands[0]);
        ring.Flush();
        Assert.Null(sim.ForTicket(s.Ticket)!.ReadLen);
        Assert.Equal(4096, sim.ForTicket(s.Ticket)!.DataIn!.Length);
    }

    [Fact]
    public void AbortTaskIsReported_AndTheTmrSlotIsSkippedWhenCompleting()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        var a = sim.Submit(Read10(1, 1), dataInLength: 512);
        Assert.True(sim.TrySubmitTmr((byte)TmrType.AbortTask, [a.CmdId]));
        var b = sim.Submit(Read10(2, 1), dataInLength: 512);

        var consumer = new CollectingConsumer();
        Assert.Equal(3, ring.Drain(consumer));
        var (type, ids) = Assert.Single(consumer.Tmrs);
        Assert.Equal(TmrType.AbortTask, type);
        Assert.Equal([a.CmdId], ids);

        // b completes first and steals a's slot; a then takes b's slot, past the TMR entry.
        consumer.Commands[1].Good();
        ring.Complete(consumer.Commands[1]);
        consumer.Commands[0].Complete(ScsiStatus.TaskAborted);
        ring.Complete(consumer.Commands[0]);
        ring.Flush();

        Assert.Equal((byte)ScsiStatus.TaskAborted, sim.ForTicket(a.Ticket)!.Status);
        Assert.Equal((byte)ScsiStatus.Good, sim.ForTicket(b.Ticket)!.Status);
        Assert.Equal(sim.Head, sim.CmdTail);
        Assert.Null(sim.BrokenReason);
    }

    [Fact]
    public void LunResetListsEveryCommand_AndATrailingTmrIsReleasedWhenIdle()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        var ids = new ushort[3];
        for (int i = 0; i < 3; i++) ids[i] = sim.Submit(Read10((uint)i, 1), dataInLength: 512).CmdId;
        var consumer = new CollectingConsumer();
        ring.Drain(consumer);
        foreach (var c in consumer.Commands)
        {
            c.Good();
            ring.Complete(c);
        }
        ring.Flush();

        sim.TrySubmitTmr((byte)TmrType.LunReset, ids);
        ring.Drain(consumer);
        Assert.Equal(TmrType.LunReset, consumer.Tmrs[0].Type);
        Assert.Equal(ids, consumer.Tmrs[0].Ids);
        // Nothing in flight: the tail moves past the TMR so the kernel gets the space back.
        Assert.True(ring.Flush());
        Assert.Equal(sim.Head, sim.CmdTail);
        Assert.Equal(sim.Head, sim.LastCleaned);
    }

    [Fact]
    public void UnknownRingOpcodeGetsUnknownOpFlag_AndTheRingGoesOn()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        Assert.True(sim.TrySubmitRaw(128, op: 5, fill: null, trackId: true, out var odd));
        var good = sim.Submit(Read10(0, 1), dataInLength: 512);

        var consumer = new CompletingConsumer(ring);
        Assert.Equal(2, ring.Drain(consumer));
        Assert.Equal(1, consumer.Commands);
        ring.Flush();

        Assert.True(sim.ForTicket(odd.Ticket)!.UnknownOp);
        Assert.Equal((byte)ScsiStatus.Good, sim.ForTicket(good.Ticket)!.Status);
        Assert.Null(sim.BrokenReason);
    }

    [Fact]
    public void SecondCompletionOfTheSameCommandIsRefused()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        sim.Submit(Read10(0, 1), dataInLength: 512);
        sim.Submit(Read10(1, 1), dataInLength: 512);
        var consumer = new CollectingConsumer();
        ring.Drain(consumer);
        var first = consumer.Commands[0];
        first.Good();
        Assert.True(ring.Complete(first));
        Assert.False(ring.Complete(first));
        ring.Flush();
        Assert.Equal(1, sim.CompletedCount);
        Assert.Null(sim.BrokenReason);

        // A command object that never came from this ring is refused too.
        var stranger = new ScsiCommand { TransportTag = consumer.Commands[1].TransportTag };
        Assert.False(ring.Complete(stranger));
        consumer.Commands[1].Good();
        Assert.True(ring.Complete(consumer.Commands[1]));
        ring.Flush();
        Assert.Equal(2, sim.CompletedCount);
        Assert.Null(sim.BrokenReason);
    }

    [Fact]
    public void ManyCompletionsShareOneKick()
    {
        using var rig = new RingRig(poolSize: 32);
        var (sim, notifier, ring) = rig;
        for (int i = 0; i < 32; i++) sim.Submit(Read10((uint)i, 8), dataInLength: 4096);
        var consumer = new CollectingConsumer();
        ring.Drain(consumer);
        foreach (var c in consumer.Commands)
        {
            c.Good();
            ring.Complete(c);
        }
        Assert.True(ring.Flush());
        Assert.False(ring.Flush());
        Assert.Equal(1, notifier.Kicks);
        Assert.Equal(32, sim.CompletedCount);
    }

    [Fact]
    public void PoolGrowsBeyondItsSize_AndCommandsAreReused()
    {
        using var rig = new RingRig(poolSize: 2);
        var (sim, notifier, ring) = rig;
        for (int i = 0; i < 5; i++) sim.Submit(Read10((uint)i, 1), dataInLength: 512);
        var consumer = new CollectingConsumer();
        ring.Drain(consumer);
        Assert.Equal(5, consumer.Commands.Distinct().Count());
        foreach (var c in consumer.Commands)
        {
            c.Good();
            ring.Complete(c);
        }
        ring.Flush();
        sim.Submit(Read10(9, 1), dataInLength: 512);
        var again = new CollectingConsumer();
        ring.Drain(again);
        Assert.Contains(again.Commands[0], consumer.Commands);
        Assert.Equal(1, ring.Outstanding);
    }

    [Fact]
    public void StartsParsingAtCmdTail_AfterARestart()
    {
        using var sim = new RingSimulator();
        var notifier = new SimulatorNotifier(sim);
        var first = RingOver(sim, notifier);
        var s0 = sim.Submit(Read10(0, 1), dataInLength: 512);
        var consumer = new CollectingConsumer();
        first.Drain(consumer);
        consumer.Commands[0].Good();
        first.Complete(consumer.Commands[0]);
        first.Flush();
        var s1 = sim.Submit(Read10(1, 1), dataInLength: 512);
        first.Dispose(); // the process went away before seeing s1

        using var second = RingOver(sim, notifier);
        var after = new CollectingConsumer();
        Assert.Equal(1, second.Drain(after));
        Assert.Equal(s1.CmdId, after.Commands[0].TransportTag);
        Assert.Equal((byte)ScsiStatus.Good, sim.ForTicket(s0.Ticket)!.Status);
    }
}
