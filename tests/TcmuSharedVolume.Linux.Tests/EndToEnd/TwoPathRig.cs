using System.Buffers.Binary;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;
using TcmuSharedVolume.Tests.Tcmu;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Tests.EndToEnd;

/// <summary>
/// What the daemon builds for one volume exported to two initiators, minus the kernel: one
/// <see cref="Volume"/> over a real sparse file (and a real reservation file) in a temp directory,
/// two paths bound to two I_T nexuses, each with its own simulated TCMU ring, both served by one
/// <see cref="RingEventLoop"/> through <see cref="VolumePathExecutor"/>, the daemon's executor.
/// Tests talk to it only as the kernel would: CDB and Data-Out in, status, sense and Data-In out.
/// </summary>
internal sealed class TwoPathRig : IDisposable
{
    public const int BlockSize = 512;
    public const string TargetName = "iqn.2026-11.test:target";
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public TwoPathRig(long sizeBytes = 16 << 20, Func<IBackingStore, IBackingStore>? wrapStore = null,
        int workers = 4, int cmdrSize = 16 * 1024 - 128, int dataBlocks = 64, bool sharedTargetPort = true)
    {
        Directory = Path.Combine(Path.GetTempPath(), "tsv-e2e-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
        string image = Path.Combine(Directory, "vol.img");
        IBackingStore store = BackingStores.Open(image, new BackingStoreOptions { CreateSizeBytes = sizeBytes });
        if (wrapStore is not null) store = wrapStore(store);
        var identity = VolumeIdentity.FromBackingPath(image);
        Volume = new Volume(image, store, BlockSize, identity, new FileReservationStore(Path.Combine(Directory, "state"), identity.UnitSerial));

        Node1 = Nexus("iqn.2026-11.test:node1", 1);
        Node2 = Nexus("iqn.2026-11.test:node2", sharedTargetPort ? (ushort)1 : (ushort)2);
        PathA = Volume.AddPath("user_1/vol-node1", Node1);
        PathB = Volume.AddPath("user_1/vol-node2", Node2);
        A = new SimulatedDevice("user_1/vol-node1", cmdrSize, dataBlocks);
        B = new SimulatedDevice("user_1/vol-node2", cmdrSize, dataBlocks);
        Loop = new RingEventLoop(workerCount: workers);
        Loop.Add(A.Ring, A.Source, new VolumePathExecutor(PathA));
        Loop.Add(B.Ring, B.Source, new VolumePathExecutor(PathB));
    }

    public string Directory { get; }
    public Volume Volume { get; }
    public ItNexus Node1 { get; }
    public ItNexus Node2 { get; }
    public VolumePath PathA { get; }
    public VolumePath PathB { get; }
    /// <summary>node1's ring.</summary>
    public SimulatedDevice A { get; }
    /// <summary>node2's ring.</summary>
    public SimulatedDevice B { get; }
    public RingEventLoop Loop { get; }

    public static ItNexus Nexus(string initiator, ushort tpgt) =>
        new(new InitiatorPort(ProtocolId.Iscsi, initiator, "400001370000"),
            new TargetPort(ProtocolId.Iscsi, $"{TargetName},t,0x{tpgt:x4}", tpgt));

    public static RingSimulator.Submitted Submit(SimulatedDevice device, byte[] cdb, byte[]? dataOut = null, int dataIn = 0, bool fragment = false)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            if (device.Sim.TrySubmit(cdb, dataOut ?? default, dataIn, out var s, fragment)) return s;
            // Ring or data area full: the kernel would queue it; wait for completions to free space.
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{device.Ring.Name}: no ring space for {Timeout}");
            Thread.Sleep(1);
        }
    }

    public static RingSimulator.Completion Await(SimulatedDevice device, RingSimulator.Submitted submitted)
    {
        RingSimulator.Completion? done = null;
        Assert.True(Wait.Until(() => (done = device.Sim.ForTicket(submitted.Ticket)) != null, (int)Timeout.TotalMilliseconds),
            $"{device.Ring.Name}: command {submitted.CmdId} (ticket {submitted.Ticket}) not completed; broken: {device.Sim.BrokenReason}");
        return done!;
    }

    public static RingSimulator.Completion Run(SimulatedDevice device, byte[] cdb, byte[]? dataOut = null, int dataIn = 0, bool fragment = false)
        => Await(device, Submit(device, cdb, dataOut, dataIn, fragment));

    /// <summary>Runs before the loop stops, e.g. to let go of commands a test holds back.</summary>
    public Action? BeforeStop { get; set; }

    public void Dispose()
    {
        BeforeStop?.Invoke();
        // A command still running after a failed test would complete into freed ring memory:
        // then leak the simulated kernel rather than crash the test host.
        bool idle = Loop.Stop(Timeout);
        Loop.Dispose();
        if (idle)
        {
            A.Dispose();
            B.Dispose();
            Volume.Dispose();
        }
        try { System.IO.Directory.Delete(Directory, recursive: true); }
        catch (IOException) { }
    }
}

/// <summary>CDBs and parameter lists as an initiator builds them.</summary>
internal static class Cdb
{
    public static byte[] TestUnitReady() => new byte[6];

    public static byte[] Inquiry(byte page, ushort allocation = 255)
    {
        var c = new byte[6];
        c[0] = 0x12;
        c[1] = 0x01; // EVPD
        c[2] = page;
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(3), allocation);
        return c;
    }

    public static byte[] StandardInquiry(ushort allocation = 96)
    {
        var c = Inquiry(0, allocation);
        c[1] = 0;
        return c;
    }

    public static byte[] Read10(uint lba, ushort blocks) => Rw10(0x28, lba, blocks);
    public static byte[] Write10(uint lba, ushort blocks) => Rw10(0x2A, lba, blocks);
    public static byte[] Read16(ulong lba, uint blocks) => Rw16(0x88, lba, blocks);
    public static byte[] Write16(ulong lba, uint blocks) => Rw16(0x8A, lba, blocks);

    private static byte[] Rw10(byte op, uint lba, ushort blocks)
    {
        var c = new byte[10];
        c[0] = op;
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(2), lba);
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(7), blocks);
        return c;
    }

    private static byte[] Rw16(byte op, ulong lba, uint blocks)
    {
        var c = new byte[16];
        c[0] = op;
        BinaryPrimitives.WriteUInt64BigEndian(c.AsSpan(2), lba);
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(10), blocks);
        return c;
    }

    /// <summary>COMPARE AND WRITE (SBC-3 5.2): Data-Out is the verify data, then the write data.</summary>
    public static byte[] CompareAndWrite(ulong lba, byte blocks)
    {
        var c = new byte[16];
        c[0] = 0x89;
        BinaryPrimitives.WriteUInt64BigEndian(c.AsSpan(2), lba);
        c[13] = blocks;
        return c;
    }

    public static byte[] Reserve6() => [0x16, 0, 0, 0, 0, 0];
    public static byte[] Release6() => [0x17, 0, 0, 0, 0, 0];

    // PERSISTENT RESERVE OUT service actions (SPC-4 6.15.2) and types (6.15.3.4).
    public const byte Register = 0x00, Reserve = 0x01, Release = 0x02, Clear = 0x03, Preempt = 0x04, PreemptAndAbort = 0x05;
    public const byte WriteExclusive = 0x1, ExclusiveAccess = 0x3, WriteExclusiveRegistrantsOnly = 0x5;

    public static byte[] PrOut(byte action, byte type = 0) => [0x5F, action, type, 0, 0, 0, 0, 0, 24, 0];

    /// <summary>The basic 24-byte PR OUT parameter list (SPC-4 6.15.3.1).</summary>
    public static byte[] PrOutParameters(ulong reservationKey, ulong serviceActionKey, bool aptpl = false)
    {
        var p = new byte[24];
        BinaryPrimitives.WriteUInt64BigEndian(p, reservationKey);
        BinaryPrimitives.WriteUInt64BigEndian(p.AsSpan(8), serviceActionKey);
        if (aptpl) p[20] = 0x01;
        return p;
    }

    public const byte ReadKeys = 0x00, ReadReservation = 0x01;

    public static byte[] PrIn(byte action, ushort allocation = 1024)
    {
        var c = new byte[10];
        c[0] = 0x5E;
        c[1] = action;
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(7), allocation);
        return c;
    }

    /// <summary>Reservation keys from READ KEYS Data-In (SPC-4 6.14.2).</summary>
    public static ulong[] Keys(byte[] readKeys)
    {
        int n = (int)BinaryPrimitives.ReadUInt32BigEndian(readKeys.AsSpan(4)) / 8;
        var keys = new ulong[n];
        for (int i = 0; i < n; i++) keys[i] = BinaryPrimitives.ReadUInt64BigEndian(readKeys.AsSpan(8 + 8 * i));
        return keys;
    }

    /// <summary>(key, type) of the reservation from READ RESERVATION Data-In (SPC-4 6.14.3); null when none.</summary>
    public static (ulong Key, byte Type)? Reservation(byte[] readReservation)
    {
        if (BinaryPrimitives.ReadUInt32BigEndian(readReservation.AsSpan(4)) == 0) return null;
        return (BinaryPrimitives.ReadUInt64BigEndian(readReservation.AsSpan(8)), (byte)(readReservation[21] & 0x0F));
    }
}

internal static class CompletionAssert
{
    public static void Good(RingSimulator.Completion c, string? what = null)
    {
        Assert.True(c.Status == (byte)ScsiStatus.Good,
            $"{what ?? "command"}: expected GOOD, got status 0x{c.Status:X2} sense {SenseData.Parse(c.Sense)}");
    }

    public static void Conflict(RingSimulator.Completion c, string? what = null)
    {
        Assert.True(c.Status == (byte)ScsiStatus.ReservationConflict,
            $"{what ?? "command"}: expected RESERVATION CONFLICT, got status 0x{c.Status:X2} sense {SenseData.Parse(c.Sense)}");
    }

    public static void Check(RingSimulator.Completion c, SenseCode expected, string? what = null)
    {
        Assert.True(c.Status == (byte)ScsiStatus.CheckCondition,
            $"{what ?? "command"}: expected CHECK CONDITION {expected}, got status 0x{c.Status:X2}");
        Assert.Equal(expected, SenseData.Parse(c.Sense));
    }
}
