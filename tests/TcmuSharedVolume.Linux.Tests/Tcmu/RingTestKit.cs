using System.Buffers.Binary;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;

namespace TcmuSharedVolume.Tests.Tcmu;

/// <summary>Forwards kicks to the simulator (the 4-byte write) and counts them.</summary>
internal sealed class SimulatorNotifier(RingSimulator simulator) : IRingNotifier
{
    private int _kicks;
    public int Kicks => Volatile.Read(ref _kicks);

    public void Kick()
    {
        Interlocked.Increment(ref _kicks);
        simulator.Kick();
    }
}

/// <summary>Keeps what a drain hands out.</summary>
internal sealed class CollectingConsumer : IRingConsumer
{
    public List<ScsiCommand> Commands { get; } = new();
    public List<(TmrType Type, ushort[] Ids)> Tmrs { get; } = new();

    public void OnCommand(ScsiCommand command) => Commands.Add(command);

    public void OnTaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds) => Tmrs.Add((type, commandIds.ToArray()));
}

/// <summary>Completes every command GOOD as soon as it is drained.</summary>
internal sealed class CompletingConsumer(TcmuRing ring) : IRingConsumer
{
    public int Commands;
    public void OnCommand(ScsiCommand command)
    {
        Commands++;
        command.Good();
        ring.Complete(command);
    }

    public void OnTaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds) { }
}

/// <summary>A simulated ring and the TcmuRing over it, the arrangement most ring tests start from:
/// <c>using var rig = new RingRig(); var (sim, notifier, ring) = rig;</c></summary>
internal sealed class RingRig : IDisposable
{
    public RingSimulator Sim { get; }
    public SimulatorNotifier Notifier { get; }
    public TcmuRing Ring { get; }

    public RingRig(RingSimulator? sim = null, int poolSize = 16)
    {
        Sim = sim ?? new RingSimulator();
        Notifier = new SimulatorNotifier(Sim);
        Ring = RingTestKit.RingOver(Sim, Notifier, poolSize);
    }

    public void Deconstruct(out RingSimulator sim, out SimulatorNotifier notifier, out TcmuRing ring)
        => (sim, notifier, ring) = (Sim, Notifier, Ring);

    public void Dispose()
    {
        Ring.Dispose();
        Sim.Dispose();
    }
}

internal static unsafe class RingTestKit
{
    public static TcmuRing RingOver(RingSimulator sim, IRingNotifier notifier, int poolSize = 16)
        => new(sim.Map, sim.MapLength, notifier, "test", poolSize);

    public static byte[] Read10(uint lba, ushort blocks)
    {
        var cdb = new byte[10];
        cdb[0] = 0x28;
        BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(2), lba);
        BinaryPrimitives.WriteUInt16BigEndian(cdb.AsSpan(7), blocks);
        return cdb;
    }

    public static byte[] Write10(uint lba, ushort blocks)
    {
        var cdb = Read10(lba, blocks);
        cdb[0] = 0x2A;
        return cdb;
    }

    public static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    public static SenseCode SenseOf(RingSimulator.Completion completion) => SenseData.Parse(completion.Sense);

    /// <summary>A well-formed CMD entry written by hand: <paramref name="iovs"/> as (map offset, length),
    /// the CDB right after the iovecs, the way tcmu_cmd_get_base_cmd_size lays it out.</summary>
    public static int EntryLength(int iovCount, int cdbLength)
        => Math.Max(48 + 16 * iovCount, 112) + ((cdbLength + 7) & ~7);

    public static void FillCommand(Span<byte> entry, long entryMapOffset, ReadOnlySpan<byte> cdb, ReadOnlySpan<(long Offset, long Length)> iovs)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(entry.Slice(8), (uint)iovs.Length);
        int cdbAt = Math.Max(48 + 16 * iovs.Length, 112);
        BinaryPrimitives.WriteUInt64LittleEndian(entry.Slice(24), (ulong)(entryMapOffset + cdbAt));
        for (int i = 0; i < iovs.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(entry.Slice(48 + 16 * i), (ulong)iovs[i].Offset);
            BinaryPrimitives.WriteUInt64LittleEndian(entry.Slice(56 + 16 * i), (ulong)iovs[i].Length);
        }
        cdb.CopyTo(entry.Slice(cdbAt));
    }
}
