using System.Buffers.Binary;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;
using static TcmuSharedVolume.Tests.Tcmu.RingTestKit;

namespace TcmuSharedVolume.Tests.Tcmu;

/// <summary>
/// Entries the kernel would never write: the ring must not read or write outside what it owns,
/// must answer the command if it can, and must go on serving the next command.
/// </summary>
public unsafe class MalformedEntryTests
{
    private const int Blocks = 8;

    /// <summary>Kinds of broken CMD content; each gets CHECK CONDITION with the given sense.</summary>
    public static TheoryData<string> ContentKinds => new()
    {
        "iovec in the ring area", "iovec past the map end", "iovec count larger than the entry",
        "cdb_off in the mailbox", "cdb_off past the entry", "CDB runs past the entry",
        "iovecs add up to more than the data area", "more iovecs than data blocks",
        "reserved opcode group", "vendor-specific opcode group", "variable-length CDB too long",
    };

    private static (int Length, RingSimulator.EntryFiller Fill, SenseCode Expected) Build(string kind, RingSimulator sim)
    {
        long data = sim.DataOffset;
        long dataArea = sim.MapLength - sim.DataOffset;
        byte[] read = Read10(0, 1);
        switch (kind)
        {
            case "iovec in the ring area":
                return (EntryLength(1, 10), (e, at) => FillCommand(e, at, read, [(128, 512)]), SenseCode.InternalTargetFailure);
            case "iovec past the map end":
                return (EntryLength(1, 10), (e, at) => FillCommand(e, at, read, [(sim.MapLength - 100, 512)]), SenseCode.InternalTargetFailure);
            case "iovec count larger than the entry":
                return (EntryLength(1, 10), (e, at) =>
                {
                    FillCommand(e, at, read, [(data, 512)]);
                    BinaryPrimitives.WriteUInt32LittleEndian(e.Slice(8), 1000);
                }, SenseCode.InternalTargetFailure);
            case "cdb_off in the mailbox":
                return (EntryLength(1, 10), (e, at) =>
                {
                    FillCommand(e, at, read, [(data, 512)]);
                    BinaryPrimitives.WriteUInt64LittleEndian(e.Slice(24), 0);
                }, SenseCode.InternalTargetFailure);
            case "cdb_off past the entry":
                return (EntryLength(1, 10), (e, at) =>
                {
                    FillCommand(e, at, read, [(data, 512)]);
                    BinaryPrimitives.WriteUInt64LittleEndian(e.Slice(24), (ulong)(at + e.Length + 64));
                }, SenseCode.InternalTargetFailure);
            case "CDB runs past the entry":
                // A 16-byte CDB (88h, READ(16)) starting 8 bytes before the entry ends.
                return (EntryLength(1, 10), (e, at) =>
                {
                    FillCommand(e, at, read, [(data, 512)]);
                    BinaryPrimitives.WriteUInt64LittleEndian(e.Slice(24), (ulong)(at + e.Length - 8));
                    e[e.Length - 8] = 0x88;
                }, SenseCode.InternalTargetFailure);
            case "iovecs add up to more than the data area":
                return (EntryLength(2, 10), (e, at) => FillCommand(e, at, read, [(data, dataArea), (data, dataArea)]), SenseCode.InternalTargetFailure);
            case "more iovecs than data blocks":
                var many = new (long, long)[Blocks + 1];
                for (int i = 0; i < many.Length; i++) many[i] = (data, 1);
                return (EntryLength(many.Length, 10), (e, at) => FillCommand(e, at, read, many), SenseCode.InternalTargetFailure);
            case "reserved opcode group":
                return (EntryLength(0, 12), (e, at) => FillCommand(e, at, new byte[12] { 0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, []), SenseCode.InvalidCommandOperationCode);
            case "vendor-specific opcode group":
                return (EntryLength(0, 10), (e, at) => FillCommand(e, at, new byte[10] { 0xC0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, []), SenseCode.InvalidCommandOperationCode);
            case "variable-length CDB too long":
                var varlen = new byte[264];
                varlen[0] = 0x7F;
                varlen[7] = 255; // 8 + 255 = 263 > 260
                return (EntryLength(0, 264), (e, at) => FillCommand(e, at, varlen, []), SenseCode.InvalidFieldInCdb);
            default:
                throw new ArgumentException(kind);
        }
    }

    [Theory]
    [MemberData(nameof(ContentKinds))]
    public void BrokenCommandContentIsAnsweredWithCheckCondition_AndTheRingGoesOn(string kind)
    {
        using var rig = new RingRig(new RingSimulator(dataBlocks: Blocks));
        var (sim, notifier, ring) = rig;
        var (length, fill, expected) = Build(kind, sim);
        Assert.True(sim.TrySubmitRaw(length, RingSimulator.OpCmd, fill, trackId: true, out var bad));
        var good = sim.Submit(Read10(1, 1), dataInLength: 512);

        var consumer = new CompletingConsumer(ring);
        Assert.Equal(2, ring.Drain(consumer));
        Assert.Equal(1, consumer.Commands); // only the good one reached the consumer
        ring.Flush();

        var answer = sim.ForTicket(bad.Ticket)!;
        Assert.Equal((byte)ScsiStatus.CheckCondition, answer.Status);
        Assert.Equal(expected, SenseOf(answer));
        Assert.Equal((byte)ScsiStatus.Good, sim.ForTicket(good.Ticket)!.Status);
        Assert.False(ring.IsFailed);
        Assert.Null(sim.BrokenReason);
        Assert.Equal(0, ring.Outstanding);
    }

    [Fact]
    public void VariableLengthCdbWithinLimitsIsPassedWhole()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        var cdb = new byte[32];
        cdb[0] = 0x7F;
        cdb[7] = 24; // 8 + 24 = 32 bytes
        cdb[31] = 0xAB;
        sim.Submit(cdb, dataInLength: 512);
        var consumer = new CollectingConsumer();
        ring.Drain(consumer);
        Assert.Equal(cdb, consumer.Commands[0].Cdb.ToArray());
    }

    [Fact]
    public void CommandSlotTooShortForAResponseCompletesItselfWithUnknownOp()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        Assert.True(sim.TrySubmitRaw(16, RingSimulator.OpCmd, null, trackId: true, out var tiny));
        var good = sim.Submit(Read10(1, 1), dataInLength: 512);

        var consumer = new CompletingConsumer(ring);
        ring.Drain(consumer);
        ring.Flush();

        Assert.True(sim.ForTicket(tiny.Ticket)!.UnknownOp);
        Assert.Equal((byte)ScsiStatus.Good, sim.ForTicket(good.Ticket)!.Status);
        Assert.Equal(1, ring.MalformedEntries);
        Assert.Null(sim.BrokenReason);
    }

    [Fact]
    public void CommandRunningPastTheRingEndCompletesItselfWithUnknownOp()
    {
        using var rig = new RingRig(new RingSimulator(cmdrSize: 1024));
        var (sim, notifier, ring) = rig;
        var consumer = new CompletingConsumer(ring);
        // Move head to 896 with two PAD entries and let the "kernel" reclaim them.
        Assert.True(sim.TrySubmitRaw(448, RingSimulator.OpPad, null, trackId: false, out _));
        Assert.True(sim.TrySubmitRaw(448, RingSimulator.OpPad, null, trackId: false, out _));
        ring.Drain(consumer);
        ring.Flush();
        Assert.Equal(896u, sim.LastCleaned);

        Assert.True(sim.TrySubmitRaw(256, RingSimulator.OpCmd, (e, at) => FillCommand(e, at, Read10(0, 1), []), trackId: true, out var wrapped, allowRunPastEnd: true));
        Assert.Equal(128u, sim.Head);
        var good = sim.Submit(Read10(1, 1), dataInLength: 512);
        ring.Drain(consumer);
        ring.Flush();

        Assert.True(sim.ForTicket(wrapped.Ticket)!.UnknownOp);
        Assert.Equal((byte)ScsiStatus.Good, sim.ForTicket(good.Ticket)!.Status);
        Assert.False(ring.IsFailed);
        Assert.Null(sim.BrokenReason);
    }

    [Fact]
    public void CommandWithIdZeroIsHiddenAsPad()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        Assert.True(sim.TrySubmitRaw(EntryLength(0, 10), RingSimulator.OpCmd, (e, at) => FillCommand(e, at, Read10(0, 0), []), trackId: false, out _));
        var good = sim.Submit(Read10(1, 1), dataInLength: 512);
        var consumer = new CompletingConsumer(ring);
        ring.Drain(consumer);
        ring.Flush();
        Assert.Equal(1, consumer.Commands);
        Assert.Equal(1, sim.CompletedCount);
        Assert.Equal((byte)ScsiStatus.Good, sim.ForTicket(good.Ticket)!.Status);
        Assert.Equal(sim.Head, sim.LastCleaned);
        Assert.Null(sim.BrokenReason);
    }

    [Fact]
    public void CommandRepeatingAnInFlightIdIsNeverCompletedTwice()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        var first = sim.Submit(Read10(1, 1), dataInLength: 512);
        Assert.True(sim.TrySubmitRaw(EntryLength(0, 10), RingSimulator.OpCmd, (e, at) =>
        {
            FillCommand(e, at, Read10(2, 0), []);
            BinaryPrimitives.WriteUInt16LittleEndian(e.Slice(4), first.CmdId);
        }, trackId: false, out _));
        var collect = new CollectingConsumer();
        ring.Drain(collect);
        var command = Assert.Single(collect.Commands);
        command.Good();
        ring.Complete(command);
        ring.Flush();
        Assert.Equal(1, sim.CompletedCount);
        Assert.Equal(sim.Head, sim.LastCleaned);
        Assert.Null(sim.BrokenReason);
    }

    [Fact]
    public void ZeroLengthHeaderStopsTheRing_WithoutThrowing_AndEarlierCommandsStillComplete()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        var before = sim.Submit(Read10(1, 1), dataInLength: 512);
        Assert.True(sim.TrySubmitRaw(128, RingSimulator.OpCmd, (e, _) => BinaryPrimitives.WriteUInt32LittleEndian(e, RingSimulator.OpCmd), trackId: true, out _));
        sim.Submit(Read10(2, 1), dataInLength: 512);

        var collect = new CollectingConsumer();
        Assert.Equal(1, ring.Drain(collect));
        Assert.True(ring.IsFailed);
        Assert.Contains("length 0", ring.FailureReason);
        Assert.Equal(0, ring.Drain(collect)); // does not spin over the same entry

        collect.Commands[0].Good();
        Assert.True(ring.Complete(collect.Commands[0]));
        ring.Flush();
        Assert.Equal((byte)ScsiStatus.Good, sim.ForTicket(before.Ticket)!.Status);
        Assert.Null(sim.BrokenReason);
    }

    [Fact]
    public void EntryClaimingBytesBeyondCmdHeadStopsTheRing()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        Assert.True(sim.TrySubmitRaw(128, RingSimulator.OpCmd, (e, _) => BinaryPrimitives.WriteUInt32LittleEndian(e, 512 | 1u), trackId: true, out _));
        Assert.Equal(0, ring.Drain(new CollectingConsumer()));
        Assert.True(ring.IsFailed);
        Assert.Equal(0u, sim.CmdTail); // nothing was written for it
    }

    [Fact]
    public void MisalignedCmdHeadStopsTheRing()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        *(uint*)(sim.Map + 12) = 13;
        Assert.Equal(0, ring.Drain(new CollectingConsumer()));
        Assert.True(ring.IsFailed);
    }

    [Fact]
    public void MalformedTmrIsIgnored_AndTheRingGoesOn()
    {
        using var rig = new RingRig();
        var (sim, notifier, ring) = rig;
        // Claims 1000 ids in a 40-byte entry.
        Assert.True(sim.TrySubmitRaw(40, RingSimulator.OpTmr, (e, _) => BinaryPrimitives.WriteUInt32LittleEndian(e.Slice(12), 1000), trackId: false, out _));
        var good = sim.Submit(Read10(1, 1), dataInLength: 512);
        var collect = new CollectingConsumer();
        ring.Drain(collect);
        Assert.Empty(collect.Tmrs);
        collect.Commands[0].Good();
        ring.Complete(collect.Commands[0]);
        ring.Flush();
        Assert.Equal((byte)ScsiStatus.Good, sim.ForTicket(good.Ticket)!.Status);
        Assert.Equal(1, ring.MalformedEntries);
    }
}
