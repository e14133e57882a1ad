using System.Buffers.Binary;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;
using TcmuSharedVolume.Tests.Tcmu;
using static TcmuSharedVolume.Tests.EndToEnd.TwoPathRig;

namespace TcmuSharedVolume.Tests.EndToEnd;

/// <summary>Both initiators at once: COMPARE AND WRITE atomicity and completion accounting.</summary>
public class ConcurrencyTests
{
    private const uint CounterLba = 4096;

    /// <summary>A block holding one 64-bit counter value in every 8 bytes, so a torn block shows.</summary>
    private static byte[] CounterBlock(ulong value)
    {
        var b = new byte[BlockSize];
        for (int i = 0; i < BlockSize; i += 8) BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(i), value);
        return b;
    }

    private static ulong ReadCounter(SimulatedDevice d)
    {
        var c = Run(d, Cdb.Read10(CounterLba, 1), dataIn: BlockSize);
        CompletionAssert.Good(c);
        ulong v = BinaryPrimitives.ReadUInt64BigEndian(c.DataIn);
        Assert.True(c.DataIn.AsSpan().SequenceEqual(CounterBlock(v)), $"torn counter block read through {d.Ring.Name}");
        return v;
    }

    private static byte[] CompareAndWriteData(ulong expected, ulong next) => [.. CounterBlock(expected), .. CounterBlock(next)];

    [Fact]
    public async Task CompareAndWriteIncrementsFromBothPathsLoseNoUpdate()
    {
        using var rig = new TwoPathRig(workers: 4);
        const int perNode = 150;
        int miscompares = 0;
        void Increment(SimulatedDevice d)
        {
            for (int done = 0; done < perNode;)
            {
                ulong v = ReadCounter(d);
                var c = Run(d, Cdb.CompareAndWrite(CounterLba, 1), CompareAndWriteData(v, v + 1));
                if (c.Status == (byte)ScsiStatus.Good)
                {
                    done++;
                    continue;
                }
                CompletionAssert.Check(c, SenseCode.MiscompareDuringVerifyOperation, $"COMPARE AND WRITE via {d.Ring.Name}");
                Interlocked.Increment(ref miscompares);
            }
        }

        await Task.WhenAll(Task.Run(() => Increment(rig.A)), Task.Run(() => Increment(rig.B)));
        // A lost update (two successful compares of the same value) leaves the counter short.
        Assert.Equal((ulong)(2 * perNode), ReadCounter(rig.A));
        Assert.Equal((ulong)(2 * perNode), ReadCounter(rig.B));
    }

    [Fact]
    public void OfConcurrentCompareAndWritesOfOneValueExactlyOneSucceeds()
    {
        using var rig = new TwoPathRig(workers: 4);
        const int perRing = 4;
        for (ulong round = 0; round < 25; round++)
        {
            rig.A.Quiet = rig.B.Quiet = true;
            var submitted = new List<(SimulatedDevice D, RingSimulator.Submitted S)>();
            for (int i = 0; i < perRing; i++)
            {
                submitted.Add((rig.A, Submit(rig.A, Cdb.CompareAndWrite(CounterLba, 1), CompareAndWriteData(round, round + 1), fragment: i % 2 == 0)));
                submitted.Add((rig.B, Submit(rig.B, Cdb.CompareAndWrite(CounterLba, 1), CompareAndWriteData(round, round + 1), fragment: i % 2 == 1)));
            }
            rig.A.Quiet = rig.B.Quiet = false;
            rig.A.Source.Signal();
            rig.B.Source.Signal();

            var results = submitted.Select(x => Await(x.D, x.S)).ToArray();
            Assert.Equal(1, results.Count(c => c.Status == (byte)ScsiStatus.Good));
            Assert.All(results.Where(c => c.Status != (byte)ScsiStatus.Good),
                c => CompletionAssert.Check(c, SenseCode.MiscompareDuringVerifyOperation));
            Assert.Equal(round + 1, ReadCounter(round % 2 == 0 ? rig.A : rig.B));
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task EveryCommandOfARandomMixFromBothPathsCompletesExactlyOnce(int seed)
    {
        using var rig = new TwoPathRig(workers: 4, cmdrSize: 8192 - 128, dataBlocks: 48);
        const int perRing = 400;
        var tickets = new List<long>[2] { [], [] };
        var devices = new[] { rig.A, rig.B };
        long blocks = rig.Volume.BlockCount;

        void Drive(int side)
        {
            var random = new Random(seed * 100 + side);
            var d = devices[side];
            ulong ownKey = (ulong)(side + 1), otherKey = (ulong)(2 - side);
            var recent = new Queue<ushort>();
            int sent = 0;
            while (sent < perRing)
            {
                // Bursts: a batch becomes visible to the loop at once, as after an interrupt.
                int burst = random.Next(1, 17);
                d.Quiet = true;
                for (int i = 0; i < burst && sent < perRing; i++, sent++)
                {
                    var (cdb, dataOut, dataIn) = RandomCommand(random, blocks, ownKey, otherKey);
                    var s = Submit(d, cdb, dataOut, dataIn, fragment: random.Next(2) == 0);
                    tickets[side].Add(s.Ticket);
                    recent.Enqueue(s.CmdId);
                    if (recent.Count > 4) recent.Dequeue();
                    if (random.Next(40) == 0)
                    {
                        // A LUN RESET naming commands of this ring: queued ones end TASK ABORTED,
                        // running ones complete normally, completed ones are not touched again.
                        var type = random.Next(2) == 0 ? TmrType.LunReset : TmrType.AbortTaskSet;
                        d.Sim.TrySubmitTmr((byte)type, recent.ToArray());
                    }
                }
                d.Quiet = false;
                d.Source.Signal();
                if (random.Next(4) == 0) Thread.Sleep(1);
            }
        }

        await Task.WhenAll(Task.Run(() => Drive(0)), Task.Run(() => Drive(1)));
        var seen = new HashSet<ScsiStatus>();
        for (int side = 0; side < 2; side++)
        {
            var d = devices[side];
            Assert.True(d.Sim.WaitForCompletions(perRing, TwoPathRig.Timeout), $"{d.Ring.Name}: {d.Sim.CompletedCount} of {perRing} completed");
            Thread.Sleep(50); // a second completion of anything would arrive now
            Assert.Null(d.Sim.BrokenReason);
            Assert.Equal(perRing, d.Sim.CompletedCount);
            Assert.Equal(0, d.Sim.InFlight);
            Assert.Equal(0, d.Ring.Outstanding);
            var completions = d.Sim.Completions;
            Assert.Equal(perRing, completions.Count);
            Assert.Equal(tickets[side].Order(), completions.Select(c => c.Ticket).Order());
            foreach (var c in completions)
            {
                var status = (ScsiStatus)c.Status;
                seen.Add(status);
                Assert.True(status is ScsiStatus.Good or ScsiStatus.CheckCondition or ScsiStatus.ReservationConflict or ScsiStatus.TaskAborted,
                    $"status {status} for cmd_id {c.CmdId}");
                Assert.False(c.UnknownOp);
                if (status == ScsiStatus.CheckCondition) Assert.NotEqual(SenseKey.NoSense, SenseData.Parse(c.Sense).Key);
            }
        }
        // The mix must have reached the reservation table and the error paths, not only I/O.
        Assert.Contains(ScsiStatus.Good, seen);
        Assert.Contains(ScsiStatus.CheckCondition, seen);
        Assert.Contains(ScsiStatus.ReservationConflict, seen);
    }

    private static (byte[] Cdb, byte[]? DataOut, int DataIn) RandomCommand(Random random, long volumeBlocks, ulong ownKey, ulong otherKey)
    {
        int roll = random.Next(100);
        ushort n = (ushort)random.Next(1, 17);
        // Mostly inside the volume, sometimes across its end (LBA OUT OF RANGE).
        long lba = random.Next(10) == 0 ? volumeBlocks - random.Next(0, 8) : random.NextInt64(0, volumeBlocks - n);
        byte[] Data(int length)
        {
            var b = new byte[length];
            random.NextBytes(b);
            return b;
        }
        byte[] Params(ulong key, ulong sak) => Cdb.PrOutParameters(key, sak);
        ulong AnyKey() => random.Next(3) switch { 0 => ownKey, 1 => otherKey, _ => 0 };
        return roll switch
        {
            < 25 => (Cdb.Read10((uint)lba, n), null, n * BlockSize),
            < 32 => (Cdb.Read16((ulong)lba, n), null, n * BlockSize),
            < 50 => (Cdb.Write10((uint)lba, n), Data(n * BlockSize), 0),
            < 57 => (Cdb.Write16((ulong)lba, n), Data(n * BlockSize), 0),
            < 60 => (Cdb.CompareAndWrite((ulong)lba, 1), Data(2 * BlockSize), 0),
            < 64 => (Cdb.TestUnitReady(), null, 0),
            < 67 => (Cdb.Inquiry(random.Next(2) == 0 ? (byte)0x80 : (byte)0x83), null, 255),
            < 75 => (Cdb.PrOut(Cdb.Register), Params(AnyKey(), AnyKey()), 0),
            < 80 => (Cdb.PrOut(Cdb.Reserve, random.Next(2) == 0 ? Cdb.WriteExclusiveRegistrantsOnly : Cdb.ExclusiveAccess), Params(ownKey, 0), 0),
            < 83 => (Cdb.PrOut(Cdb.Release, Cdb.WriteExclusiveRegistrantsOnly), Params(ownKey, 0), 0),
            < 87 => (Cdb.PrOut(random.Next(2) == 0 ? Cdb.Preempt : Cdb.PreemptAndAbort, Cdb.WriteExclusiveRegistrantsOnly), Params(ownKey, otherKey), 0),
            < 88 => (Cdb.PrOut(Cdb.Clear), Params(ownKey, 0), 0),
            < 92 => (Cdb.PrIn(random.Next(2) == 0 ? Cdb.ReadKeys : Cdb.ReadReservation), null, 1024),
            < 94 => (Cdb.Reserve6(), null, 0),
            < 96 => (Cdb.Release6(), null, 0),
            < 98 => ([0x02, 0, 0, 0, 0, 0], null, 0),                       // no such command
            _ => ([0xC5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], null, 0), // vendor-specific group: no CDB length
        };
    }
}
