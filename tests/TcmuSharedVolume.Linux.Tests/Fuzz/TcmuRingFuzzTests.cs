using System.Buffers.Binary;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;
using TcmuSharedVolume.Tests.Tcmu;
using Xunit.Abstractions;
using static TcmuSharedVolume.Tests.Tcmu.RingTestKit;

namespace TcmuSharedVolume.Tests.Fuzz;

/// <summary>
/// CMD entries the kernel would never write, through the ring simulator: random iovec counts,
/// iovecs anywhere (mailbox, ring, data area, past the map, huge), cdb_off anywhere, any CDB
/// bytes, and now and then a random header. The ring must never throw, never hand a consumer
/// memory outside the data area, answer every entry it can (the consumer's answer, CHECK
/// CONDITION with sense, or UNKNOWN_OP), and go on serving the next command.
/// </summary>
public sealed unsafe class TcmuRingFuzzTests(ITestOutputHelper output)
{
    private const int DataBlocks = 16;

    /// <summary>Checks the bounds of what it is handed, then answers GOOD.</summary>
    private sealed class BoundsCheckingConsumer(RingSimulator sim, TcmuRing ring) : IRingConsumer
    {
        public int Commands;

        public void OnCommand(ScsiCommand command)
        {
            Commands++;
            long dataStart = (long)sim.Map + sim.DataOffset, mapEnd = (long)sim.Map + sim.MapLength;
            long total = 0;
            foreach (var iov in command.Data.Segments)
            {
                if (iov.Length == 0) continue;
                Assert.True(iov.Length > 0, $"iovec of negative length {iov.Length}");
                Assert.True((long)iov.Base >= dataStart && (long)iov.Base + (long)iov.Length <= mapEnd,
                    $"iovec {(long)iov.Base - (long)sim.Map:x}+{(long)iov.Length:x} outside the data area [{sim.DataOffset:x}, {sim.MapLength:x})");
                total += iov.Length;
            }
            Assert.Equal(command.Data.Length, total);
            Assert.InRange(command.Cdb.Length, 6, 260);
            command.Good();
            ring.Complete(command);
        }

        public void OnTaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds) { }
    }

    private static long RandomOffset(Random rng, RingSimulator sim) => rng.Next(8) switch
    {
        0 => rng.Next(0, RingSimulator.MailboxSize),                                   // mailbox
        1 => RingSimulator.MailboxSize + rng.Next((int)sim.CmdrSize),                  // command ring
        2 => sim.MapLength - rng.Next(0, 4096),                                        // straddling the end
        3 => sim.MapLength + rng.Next(0, 1 << 20),                                     // past the map
        4 => rng.Next(2) == 0 ? long.MaxValue - rng.Next(4096) : -rng.Next(1, 1 << 20),// huge / "negative"
        _ => sim.DataOffset + (long)rng.Next(DataBlocks) * sim.BlockSize + (rng.Next(4) == 0 ? rng.Next(sim.BlockSize) : 0),
    };

    private static long RandomLength(Random rng, RingSimulator sim) => rng.Next(6) switch
    {
        0 => 0,
        1 => rng.Next(1, 513),
        2 => sim.BlockSize,
        3 => (long)rng.Next(1, DataBlocks + 2) * sim.BlockSize,
        4 => long.MaxValue - rng.Next(4096),
        _ => rng.Next(1, 1 << 20),
    };

    private static readonly byte[] Opcodes = [0x00, 0x12, 0x25, 0x28, 0x2A, 0x35, 0x5E, 0x5F, 0x7F, 0x88, 0x8A, 0x9E, 0xA0, 0xC0, 0x60, 0x80];

    private static void FillRandomCommand(Random rng, RingSimulator sim, Span<byte> entry, long at)
    {
        // Laid out whole in scratch space, then cut to the slot: a short slot gets a cut entry.
        Span<byte> e = new byte[1024];
        entry[..8].CopyTo(e);
        int iovs = rng.Next(0, 6);
        int cdbLength = rng.Next(4) == 0 ? rng.Next(1, 40) : 16;
        var list = new (long, long)[iovs];
        for (int v = 0; v < iovs; v++) list[v] = (RandomOffset(rng, sim), RandomLength(rng, sim));
        var cdb = new byte[cdbLength];
        rng.NextBytes(cdb);
        if (rng.Next(3) != 0) cdb[0] = Opcodes[rng.Next(Opcodes.Length)];
        if (cdb[0] == 0x7F && cdb.Length > 7 && rng.Next(2) == 0) cdb[7] = (byte)rng.Next(0, 24);
        FillCommand(e, at, cdb, list);
        // Then lie about some of it.
        switch (rng.Next(6))
        {
            case 0: BinaryPrimitives.WriteUInt32LittleEndian(e.Slice(8), (uint)rng.Next(0, 1 << 16)); break;           // iov_cnt
            case 1: BinaryPrimitives.WriteUInt64LittleEndian(e.Slice(24), (ulong)RandomOffset(rng, sim)); break;      // cdb_off anywhere
            case 2: BinaryPrimitives.WriteUInt64LittleEndian(e.Slice(24), (ulong)(at + rng.Next(0, entry.Length + 64))); break; // cdb_off near the entry
            case 3: BinaryPrimitives.WriteUInt32LittleEndian(e.Slice(12), (uint)rng.Next()); break; // iov_bidi_cnt
            default: break;
        }
        e[..entry.Length].CopyTo(entry);
    }

    [Fact]
    public void RandomCmdEntriesNeverEscapeTheDataArea_AndTheRingGoesOn()
    {
        int cases = FuzzBudget.Cases();
        RingRig? rig = null;
        int delivered = 0, checkConditions = 0, unknownOps = 0, rigs = 0;
        try
        {
            FuzzBudget.Run(output, "TcmuRing.Drain (ring entries)", cases, FuzzBudget.Seed(4404), (rng, i) =>
            {
                if (rig is null || rig.Ring.IsFailed)
                {
                    rig?.Dispose();
                    rig = new RingRig(new RingSimulator(cmdrSize: 8192, dataBlocks: DataBlocks));
                    rigs++;
                }
                var (sim, _, ring) = rig;
                var consumer = new BoundsCheckingConsumer(sim, ring);

                if (i % 64 == 63)
                {
                    // A random header (length, op, id) as well: the ring may stop, but never throws
                    // and never writes a completion the kernel would reject.
                    int len = 8 * rng.Next(1, 64);
                    Assert.True(sim.TrySubmitRaw(len, RingSimulator.OpCmd, (e, at) =>
                    {
                        var junk = new byte[e.Length];
                        rng.NextBytes(junk);
                        junk.CopyTo(e);
                    }, trackId: true, out _));
                    ring.Drain(consumer);
                    if (!ring.IsFailed) ring.Flush();
                    Assert.Null(sim.BrokenReason);
                    rig.Dispose();
                    rig = null;
                    return;
                }

                int length = rng.Next(4) == 0 ? 8 * rng.Next(2, 80) : EntryLength(rng.Next(0, 6), 16);
                Assert.True(sim.TrySubmitRaw(length, RingSimulator.OpCmd, (e, at) => FillRandomCommand(rng, sim, e, at), trackId: true, out var bad));
                var good = sim.Submit(Read10(1, 1), dataInLength: 512);

                ring.Drain(consumer);
                Assert.False(ring.IsFailed, ring.FailureReason);
                ring.Flush();
                Assert.Null(sim.BrokenReason);
                Assert.Equal(0, ring.Outstanding);

                var answer = sim.ForTicket(bad.Ticket);
                Assert.NotNull(answer);
                if (answer!.UnknownOp) unknownOps++;
                else if (answer.Status == (byte)ScsiStatus.CheckCondition)
                {
                    var sense = SenseData.Parse(answer.Sense);
                    Assert.True(sense.Key is SenseKey.IllegalRequest or SenseKey.HardwareError or SenseKey.AbortedCommand, $"sense {sense}");
                    checkConditions++;
                }
                else
                {
                    Assert.Equal((byte)ScsiStatus.Good, answer.Status);
                    delivered++;
                }
                Assert.Equal((byte)ScsiStatus.Good, sim.ForTicket(good.Ticket)!.Status);
            });
        }
        finally
        {
            rig?.Dispose();
        }
        output.WriteLine($"delivered {delivered}, CHECK CONDITION {checkConditions}, UNKNOWN_OP {unknownOps}, rigs {rigs}");
        // Every outcome must have been reached, or the generators prove little.
        Assert.True(delivered > 0 && checkConditions > 0 && unknownOps > 0, $"delivered {delivered}, CHECK CONDITION {checkConditions}, UNKNOWN_OP {unknownOps}");
    }
}
