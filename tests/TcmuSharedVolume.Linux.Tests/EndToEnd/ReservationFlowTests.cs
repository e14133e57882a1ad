using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;
using TcmuSharedVolume.Tests.Tcmu;
using static TcmuSharedVolume.Tests.EndToEnd.TwoPathRig;

namespace TcmuSharedVolume.Tests.EndToEnd;

/// <summary>
/// Reservations as a two-node cluster uses them, through both rings: the Azure shared-disk
/// failover flow (WERO, unregister, PREEMPT AND ABORT), fencing of writes in flight, and resets.
/// </summary>
public class ReservationFlowTests
{
    private const ulong Key1 = 0x0123_4567_89AB_0001, Key2 = 0x0123_4567_89AB_0002;

    private static RingSimulator.Completion ProutGood(SimulatedDevice d, byte action, ulong key, ulong serviceActionKey, byte type = 0)
    {
        var c = Run(d, Cdb.PrOut(action, type), Cdb.PrOutParameters(key, serviceActionKey));
        CompletionAssert.Good(c, $"PR OUT {action:X2}h via {d.Ring.Name}");
        return c;
    }

    private static byte[] Block(byte fill, int blocks = 1) => Enumerable.Repeat(fill, blocks * BlockSize).ToArray();

    private static byte[] ReadBlocks(SimulatedDevice d, uint lba, ushort blocks)
    {
        var c = Run(d, Cdb.Read10(lba, blocks), dataIn: blocks * BlockSize);
        CompletionAssert.Good(c, $"READ at {lba} via {d.Ring.Name}");
        return c.DataIn!;
    }

    private static ulong[] Keys(SimulatedDevice d)
    {
        var c = Run(d, Cdb.PrIn(Cdb.ReadKeys), dataIn: 1024);
        CompletionAssert.Good(c);
        return Cdb.Keys(c.DataIn!);
    }

    private static (ulong Key, byte Type)? Reservation(SimulatedDevice d)
    {
        var c = Run(d, Cdb.PrIn(Cdb.ReadReservation), dataIn: 1024);
        CompletionAssert.Good(c);
        return Cdb.Reservation(c.DataIn!);
    }

    [Fact]
    public void AzureTwoNodeFailover()
    {
        using var rig = new TwoPathRig();
        ProutGood(rig.A, Cdb.Register, 0, Key1);
        ProutGood(rig.B, Cdb.Register, 0, Key2);
        ProutGood(rig.A, Cdb.Reserve, Key1, 0, Cdb.WriteExclusiveRegistrantsOnly);
        Assert.Equal((Key1, Cdb.WriteExclusiveRegistrantsOnly), Reservation(rig.B));
        Assert.Equal([Key1, Key2], Keys(rig.A).Order());

        // Both nodes are registrants of a WERO reservation: both may write.
        var node1Data = Block(0xA1, 8);
        CompletionAssert.Good(Run(rig.A, Cdb.Write10(100, 8), node1Data), "node1 WRITE");
        CompletionAssert.Good(Run(rig.B, Cdb.Write10(200, 1), Block(0xB2)), "node2 WRITE");

        // node2 leaves the cluster: unregistered, its writes conflict and do not land; reads still work.
        ProutGood(rig.B, Cdb.Register, Key2, 0);
        var refused = Run(rig.B, Cdb.Write10(200, 1), Block(0xEE));
        CompletionAssert.Conflict(refused, "unregistered node2 WRITE");
        Assert.Equal(0x18, refused.Status);
        Assert.Equal(Block(0xB2), ReadBlocks(rig.B, 200, 1));

        // node2 rejoins and takes over: PREEMPT AND ABORT of node1's key.
        ProutGood(rig.B, Cdb.Register, 0, Key2);
        ProutGood(rig.B, Cdb.PreemptAndAbort, Key2, Key1, Cdb.WriteExclusiveRegistrantsOnly);
        Assert.Equal((Key2, Cdb.WriteExclusiveRegistrantsOnly), Reservation(rig.B));
        Assert.Equal([Key2], Keys(rig.B));

        // node1 first learns it was preempted (SPC-4 5.12.11.2.6), then is fenced.
        CompletionAssert.Check(Run(rig.A, Cdb.TestUnitReady()), SenseCode.RegistrationsPreempted, "node1 TUR after preemption");
        CompletionAssert.Good(Run(rig.A, Cdb.TestUnitReady()), "node1 second TUR");
        Assert.Equal((Key2, Cdb.WriteExclusiveRegistrantsOnly), Reservation(rig.A));
        CompletionAssert.Conflict(Run(rig.A, Cdb.Write10(100, 8), Block(0xEE, 8)), "fenced node1 WRITE");
        CompletionAssert.Conflict(Run(rig.A, Cdb.Write16(5000, 1), Block(0xEE)), "fenced node1 WRITE(16)");

        CompletionAssert.Good(Run(rig.B, Cdb.Write10(300, 1), Block(0xB3)), "node2 WRITE as the new holder");
        Assert.Equal(node1Data, ReadBlocks(rig.B, 100, 8));
        Assert.Equal(node1Data, ReadBlocks(rig.A, 100, 8)); // WERO lets the fenced node read
        Assert.Equal(Block(0xB3), ReadBlocks(rig.A, 300, 1));
        Assert.Equal(new byte[BlockSize], ReadBlocks(rig.B, 5000, 1));
    }

    [Fact]
    public void PreemptAndAbortCompletesOnlyAfterThePreemptedNodesWritesInFlightAndNoneLandsAfter()
    {
        // node1's writes go to LBA 0-1023; those wait inside the backing store until the gate opens.
        GatedStore? gate = null;
        using var rig = new TwoPathRig(workers: 8, wrapStore: s => gate = new GatedStore(s, 0, 1024L * BlockSize));
        ProutGood(rig.A, Cdb.Register, 0, Key1);
        ProutGood(rig.B, Cdb.Register, 0, Key2);
        ProutGood(rig.A, Cdb.Reserve, Key1, 0, Cdb.WriteExclusiveRegistrantsOnly);

        gate!.Close();
        rig.BeforeStop = gate.Open;
        const int inFlight = 4;
        var writes = new RingSimulator.Submitted[inFlight];
        for (int i = 0; i < inFlight; i++)
            writes[i] = Submit(rig.A, Cdb.Write10((uint)(i * 8), 8), Block((byte)(0x10 + i), 8));
        Assert.True(Wait.Until(() => gate.Waiting == inFlight), $"{gate.Waiting} of {inFlight} node1 writes reached the store");

        var preempt = Submit(rig.B, Cdb.PrOut(Cdb.PreemptAndAbort, Cdb.WriteExclusiveRegistrantsOnly), Cdb.PrOutParameters(Key2, Key1));
        gate.AtLanding = () => rig.B.Sim.ForTicket(preempt.Ticket) is not null;
        // Only to know the PR OUT has been decided (it is now waiting for node1's writes): a
        // command from node1 sent before that would pass the gate and rightly wait with the others.
        Assert.True(Wait.Until(() => rig.Volume.Reservations.Snapshot().Registrations.All(r => r.Key != Key1)));
        // The preemption is decided at once: node1's new commands are refused while the PR OUT
        // still waits for its old ones (first the unit attention, then the conflict).
        CompletionAssert.Check(Run(rig.A, Cdb.Write10(64, 1), Block(0xEE)), SenseCode.RegistrationsPreempted, "node1 WRITE during the drain");
        CompletionAssert.Conflict(Run(rig.A, Cdb.Write10(72, 1), Block(0xEE)), "node1 WRITE during the drain");
        Thread.Sleep(200);
        Assert.Null(rig.B.Sim.ForTicket(preempt.Ticket)); // GOOD would let node2 think node1 is fenced
        Assert.Equal(inFlight, gate.Waiting);

        gate.Open();
        CompletionAssert.Good(Await(rig.B, preempt), "PREEMPT AND ABORT");
        foreach (var w in writes)
            CompletionAssert.Good(Await(rig.A, w), "node1 write that passed the gate before the preemption");
        Assert.Equal(inFlight, gate.Landed.Count);
        Assert.All(gate.Landed, l => Assert.False(l.Observed, $"node1 write at byte {l.Offset} landed after PREEMPT AND ABORT completed"));

        // After GOOD nothing of node1's lands.
        CompletionAssert.Conflict(Run(rig.A, Cdb.Write10(80, 8), Block(0xEE, 8)), "node1 WRITE after the preemption");
        Assert.Equal(inFlight, gate.Landed.Count);
        for (int i = 0; i < inFlight; i++)
            Assert.Equal(Block((byte)(0x10 + i), 8), ReadBlocks(rig.B, (uint)(i * 8), 8));
        Assert.Equal(new byte[BlockSize * 2], ReadBlocks(rig.B, 64, 2).Concat(ReadBlocks(rig.B, 72, 1)).Take(BlockSize * 2).ToArray());
    }

    [Fact]
    public void LunResetOnOnePathReleasesItsSpc2Reservation()
    {
        using var rig = new TwoPathRig();
        CompletionAssert.Good(Run(rig.A, Cdb.Reserve6()), "node1 RESERVE(6)");
        CompletionAssert.Conflict(Run(rig.B, Cdb.Write10(10, 1), Block(0xB1)), "node2 WRITE under node1's RESERVE");
        CompletionAssert.Conflict(Run(rig.B, Cdb.Reserve6()), "node2 RESERVE(6) under node1's RESERVE");

        Assert.True(rig.A.Sim.TrySubmitTmr((byte)Linux.Tcmu.TmrType.LunReset, []));
        // The ring handles entries in order, so once a later command completes the reset has been applied.
        CompletionAssert.Good(Run(rig.A, Cdb.TestUnitReady()), "node1 TUR: the kernel, not the daemon, tells the issuer");
        // SAM-5 logical unit reset: every other I_T nexus, here the other path's, hears of it.
        CompletionAssert.Check(Run(rig.B, Cdb.TestUnitReady()), SenseCode.BusDeviceResetFunctionOccurred, "node2 TUR after node1's LUN reset");

        CompletionAssert.Good(Run(rig.B, Cdb.Write10(10, 1), Block(0xB1)), "node2 WRITE after the LUN reset");
        CompletionAssert.Good(Run(rig.B, Cdb.Reserve6()), "node2 RESERVE(6) after the LUN reset");
        CompletionAssert.Conflict(Run(rig.A, Cdb.Write10(11, 1), Block(0xA1)), "node1 WRITE under node2's RESERVE");
        Assert.Equal(Block(0xB1), ReadBlocks(rig.B, 10, 1));
    }

    [Theory]
    [InlineData(Linux.Tcmu.TmrType.TargetWarmReset)]
    [InlineData(Linux.Tcmu.TmrType.TargetColdReset)]
    public void TargetResetReleasesTheSpc2ReservationAndTellsTheOtherPath(Linux.Tcmu.TmrType type)
    {
        using var rig = new TwoPathRig();
        CompletionAssert.Good(Run(rig.A, Cdb.Reserve6()), "node1 RESERVE(6)");
        CompletionAssert.Conflict(Run(rig.B, Cdb.Write10(10, 1), Block(0xB1)), "node2 WRITE under node1's RESERVE");

        Assert.True(rig.B.Sim.TrySubmitTmr((byte)type, []));
        CompletionAssert.Good(Run(rig.B, Cdb.TestUnitReady()), "node2 TUR after its own target reset");

        // SPC-2: a target reset releases the reservation; its holder is told it happened.
        CompletionAssert.Check(Run(rig.A, Cdb.TestUnitReady()), SenseCode.PowerOnResetOrBusDeviceResetOccurred, "node1 TUR after node2's target reset");
        CompletionAssert.Good(Run(rig.B, Cdb.Write10(10, 1), Block(0xB1)), "node2 WRITE after the target reset");
        CompletionAssert.Good(Run(rig.B, Cdb.Reserve6()), "node2 RESERVE(6) after the target reset");
    }

    [Fact]
    public void LunResetLeavesRegistrationsAndThePersistentReservation()
    {
        using var rig = new TwoPathRig();
        ProutGood(rig.A, Cdb.Register, 0, Key1);
        ProutGood(rig.B, Cdb.Register, 0, Key2);
        ProutGood(rig.A, Cdb.Reserve, Key1, 0, Cdb.ExclusiveAccess);
        CompletionAssert.Conflict(Run(rig.B, Cdb.Read10(0, 1), dataIn: BlockSize), "node2 READ under node1's EXCLUSIVE ACCESS");

        Assert.True(rig.A.Sim.TrySubmitTmr((byte)Linux.Tcmu.TmrType.LunReset, []));
        Assert.True(rig.B.Sim.TrySubmitTmr((byte)Linux.Tcmu.TmrType.LunReset, []));
        Run(rig.A, Cdb.TestUnitReady());
        Run(rig.B, Cdb.TestUnitReady());
        // Each reset tells the volume's other nexus (29h/03h); which TEST UNIT READY took it
        // depends on the order the two rings ran in. Take what is left, as an initiator would.
        foreach (var path in new[] { rig.A, rig.B })
        {
            var tur = Run(path, Cdb.TestUnitReady());
            if (tur.Status != (byte)ScsiStatus.Good)
                CompletionAssert.Check(tur, SenseCode.BusDeviceResetFunctionOccurred, "the other path's LUN RESET");
            CompletionAssert.Good(Run(path, Cdb.TestUnitReady()), "TEST UNIT READY after the resets");
        }

        Assert.Equal([Key1, Key2], Keys(rig.B).Order());
        Assert.Equal((Key1, Cdb.ExclusiveAccess), Reservation(rig.B));
        CompletionAssert.Conflict(Run(rig.B, Cdb.Read10(0, 1), dataIn: BlockSize), "node2 READ after the LUN reset");
        CompletionAssert.Good(Run(rig.A, Cdb.Write10(0, 1), Block(0xA1)), "holder WRITE after the LUN reset");
    }
}
