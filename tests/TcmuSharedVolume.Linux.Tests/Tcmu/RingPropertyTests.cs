using System.Buffers.Binary;
using FsCheck;
using FsCheck.Fluent;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;
using static TcmuSharedVolume.Tests.Tcmu.RingTestKit;

namespace TcmuSharedVolume.Tests.Tcmu;

/// <summary>
/// Random ring contents (lengths, ops, cdb offsets, iovecs, opcodes, TMRs, PADs) with valid
/// framing: every CMD the "kernel" queued must get exactly one completion with a valid status,
/// the kernel must never see a broken ring, and nothing may throw.
/// </summary>
public unsafe class RingPropertyTests
{
    private const int Blocks = 8;

    [Fact]
    public void EveryCommandGetsExactlyOneValidCompletion()
    {
        var entries = Gen.Choose(0, int.MaxValue).ArrayOf();
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(300), Prop.ForAll(entries.ToArbitrary(), RunScenario));
    }

    private static void RunScenario(int[] seeds)
    {
        using var rig = new RingRig(new RingSimulator(cmdrSize: 4096 - 128, dataBlocks: Blocks), poolSize: 4);
        var (sim, notifier, ring) = rig;
        var consumer = new CollectingConsumer();
        var tracked = new List<long>();
        var shuffle = new Random(seeds.Length);

        void Settle()
        {
            ring.Drain(consumer);
            // Complete in a random order with random outcomes.
            foreach (var command in consumer.Commands.OrderBy(_ => shuffle.Next()).ToArray())
            {
                switch (shuffle.Next(4))
                {
                    case 0: command.Good(); break;
                    case 1: command.Good(shuffle.NextInt64(0, command.Data.Length + 1)); break;
                    case 2: command.CheckCondition(SenseCode.LbaOutOfRange, FieldPointer.Cdb(2)); break;
                    default: command.Complete(ScsiStatus.Busy); break;
                }
                Assert.True(ring.Complete(command));
            }
            consumer.Commands.Clear();
            ring.Flush();
        }

        foreach (int seed in seeds)
        {
            var r = new Random(seed);
            var (length, op, track, fill) = RandomEntry(r, sim);
            if (!sim.TrySubmitRaw(length, op, fill, track, out var submitted))
            {
                Settle();
                if (!sim.TrySubmitRaw(length, op, fill, track, out submitted)) continue;
            }
            if (track) tracked.Add(submitted.Ticket);
            if (r.Next(4) == 0) Settle(); // sometimes drain mid-stream, sometimes in big batches
        }
        Settle();

        Assert.False(ring.IsFailed, ring.FailureReason);
        Assert.Null(sim.BrokenReason);
        Assert.Equal(0, ring.Outstanding);
        Assert.Equal(0, sim.InFlight);
        Assert.Equal(sim.Head, sim.CmdTail);
        Assert.Equal(tracked.Count, sim.CompletedCount);
        foreach (long ticket in tracked)
        {
            var done = sim.ForTicket(ticket);
            Assert.NotNull(done);
            Assert.Contains(done.Status, new byte[] { 0x00, 0x02, 0x08, 0x40 });
            if (done.Status == 0x02)
                Assert.NotEqual(SenseKey.NoSense, SenseData.Parse(done.Sense).Key);
        }
    }

    private static int KernelCdbLength(byte[] cdb) => cdb[0] switch
    {
        0x7F => 8 + cdb[7],
        _ => (cdb[0] >> 5) switch { 0 => 6, 1 or 2 => 10, 3 => 12, 4 => 16, 5 => 12, _ => 10 },
    };

    private static (int Length, byte Op, bool Track, RingSimulator.EntryFiller? Fill) RandomEntry(Random r, RingSimulator sim)
    {
        long dataArea = sim.MapLength - sim.DataOffset;
        switch (r.Next(10))
        {
            case <= 4:
            {
                // Mostly well-formed commands with occasional bad fields.
                int iovs = r.Next(0, 4);
                var cdb = new byte[264];
                r.NextBytes(cdb);
                if (r.Next(8) == 0) cdb[0] = 0x7F;
                if (r.Next(3) > 0) cdb[0] = (byte)(cdb[0] & 0xBF); // favour the standard groups
                int cdbLength = KernelCdbLength(cdb);
                int length = EntryLength(iovs, cdbLength) + 8 * r.Next(0, 3);
                var list = new (long, long)[iovs];
                for (int i = 0; i < iovs; i++)
                {
                    if (r.Next(6) == 0)
                        list[i] = (r.NextInt64(0, sim.MapLength + 8192), r.NextInt64(0, dataArea * 2));
                    else
                    {
                        long @base = sim.DataOffset + r.NextInt64(0, dataArea);
                        list[i] = (@base, r.NextInt64(0, sim.MapLength - @base + 1));
                    }
                }
                bool badCdbOff = r.Next(8) == 0;
                long wildCdbOff = r.NextInt64(0, sim.MapLength);
                return (length, RingSimulator.OpCmd, true, (e, at) =>
                {
                    FillCommand(e, at, cdb.AsSpan(0, cdbLength), list);
                    if (badCdbOff) BinaryPrimitives.WriteUInt64LittleEndian(e.Slice(24), (ulong)wildCdbOff);
                });
            }
            case 5:
            {
                // Garbage body of any length, short slots included.
                int length = 8 * r.Next(1, 48);
                var body = new byte[length];
                r.NextBytes(body);
                return (length, RingSimulator.OpCmd, true, (e, _) => body.AsSpan(8, e.Length - 8).CopyTo(e.Slice(8)));
            }
            case 6:
                return (8 * r.Next(1, 32), RingSimulator.OpPad, false, null);
            case 7:
            {
                int count = r.Next(0, 6);
                var ids = new ushort[count];
                for (int i = 0; i < count; i++) ids[i] = (ushort)r.Next(0, 65536);
                bool lie = r.Next(4) == 0;
                int length = (32 + 2 * count + 7) & ~7;
                return (length, RingSimulator.OpTmr, false, (e, _) =>
                {
                    e[8] = (byte)r.Next(0, 256);
                    BinaryPrimitives.WriteUInt32LittleEndian(e.Slice(12), lie ? (uint)r.Next() : (uint)count);
                    for (int i = 0; i < count; i++) BinaryPrimitives.WriteUInt16LittleEndian(e.Slice(32 + 2 * i), ids[i]);
                });
            }
            case 8:
                return (8 * r.Next(1, 32), (byte)r.Next(3, 8), true, null);
            default:
                // A command without an id: must not be completed at all.
                return (EntryLength(0, 10), RingSimulator.OpCmd, false, (e, at) => FillCommand(e, at, Read10(0, 1), []));
        }
    }
}
