using System.Buffers.Binary;
using System.Runtime.InteropServices;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Tests.Reservations;

/// <summary>What a command ended with, read back the way an initiator would.</summary>
public sealed record CommandResult(ScsiStatus Status, SenseCode Sense, byte[] Data)
{
    public bool IsGood => Status == ScsiStatus.Good;
    public bool IsConflict => Status == ScsiStatus.ReservationConflict;
    public override string ToString() => Status == ScsiStatus.CheckCondition ? $"CHECK CONDITION {Sense}" : Status.ToString();
}

/// <summary>Records PREEMPT AND ABORT drains, and what the gate said while they ran.</summary>
public sealed class RecordingDrain : ICommandDrain
{
    public List<IReadOnlyCollection<ItNexus>> Calls { get; } = [];
    public Action<IReadOnlyCollection<ItNexus>>? OnDrain { get; set; }

    /// <summary>What the drain reports: false plays commands still running at the deadline.</summary>
    public bool Drained { get; set; } = true;

    public bool DrainCommands(IReadOnlyCollection<ItNexus> nexuses, TimeSpan timeout)
    {
        Calls.Add([.. nexuses]);
        OnDrain?.Invoke(nexuses);
        return Drained;
    }
}

/// <summary>
/// A volume's reservation table with N bound nexuses, and PR commands built as real CDBs with
/// parameter data in native memory split across two iovecs, as the TCMU ring would hand them over.
/// </summary>
public sealed class PrTestKit
{
    public const string TargetName = "iqn.2003-01.org.linux-iscsi.test:vol";

    public List<ItNexus> Bound { get; } = [];
    public RecordingDrain Drain { get; } = new();
    public IReservationStore Store { get; }
    public VolumeReservations Pr { get; private set; }

    public PrTestKit(int nexuses = 3, IReservationStore? store = null, int targetPorts = 1)
    {
        for (int port = 1; port <= targetPorts; port++)
            for (int i = 0; i < nexuses; i++)
                Bound.Add(Nexus(i, port));
        Store = store ?? new InMemoryReservationStore();
        Pr = new VolumeReservations(Store, () => Bound.ToArray(), Drain);
    }

    /// <summary>An engine of one's own making over the kit's nexuses (a host of a shared table).</summary>
    public PrTestKit(int nexuses, Func<Func<IEnumerable<ItNexus>>, ICommandDrain, VolumeReservations> engine)
    {
        for (int i = 0; i < nexuses; i++)
            Bound.Add(Nexus(i));
        Store = new InMemoryReservationStore();
        Pr = engine(() => Bound.ToArray(), Drain);
    }

    public ItNexus this[int i] => Bound[i];

    /// <summary>A fresh engine on the same store: what a daemon restart sees.</summary>
    public void Restart() => Pr = new VolumeReservations(Store, () => Bound.ToArray(), Drain);

    public static string InitiatorName(int i) => $"iqn.1994-05.com.example:node{i}";

    public static ItNexus Nexus(int i, int port = 1, string? isid = null) =>
        new(new InitiatorPort(ProtocolId.Iscsi, InitiatorName(i), isid ?? $"40000137{i:x4}"),
            new TargetPort(ProtocolId.Iscsi, $"{TargetName},t,0x{port:x4}", (ushort)port));

    // ---------------------------------------------------------------- raw command execution

    public static unsafe CommandResult Run(Action<ScsiCommand> execute,
        byte[] cdb, byte[]? dataOut = null, int dataInLength = 0)
    {
        int length = dataOut?.Length ?? dataInLength;
        byte* mem = (byte*)NativeMemory.AllocZeroed((nuint)Math.Max(1, length));
        var iov = (IoVec*)NativeMemory.Alloc((nuint)(2 * sizeof(IoVec)));
        try
        {
            dataOut?.CopyTo(new Span<byte>(mem, length));
            int first = length / 2;
            iov[0] = new IoVec((nint)mem, first);
            iov[1] = new IoVec((nint)(mem + first), length - first);
            var command = new ScsiCommand();
            command.Reset();
            command.SetCdb(cdb);
            command.Data = new DataBuffer(iov, length == 0 ? 0 : 2, length);
            execute(command);
            long produced = command.DataInLength < 0 ? length : command.DataInLength;
            var data = new Span<byte>(mem, (int)Math.Min(produced, length)).ToArray();
            var sense = command.Status == ScsiStatus.CheckCondition ? SenseData.Parse(command.Sense) : SenseCode.NoSense;
            return new CommandResult(command.Status, sense, data);
        }
        finally
        {
            NativeMemory.Free(iov);
            NativeMemory.Free(mem);
        }
    }

    public CommandResult Execute(ItNexus? n, byte[] cdb, byte[]? dataOut = null, int dataInLength = 0) =>
        Run(c => Pr.Execute(n, c), cdb, dataOut, dataInLength);

    // ---------------------------------------------------------------- PR OUT

    public static byte[] PrOutCdb(byte action, byte type, int listLength, int scope = 0)
    {
        var cdb = new byte[10];
        cdb[0] = OperationCode.PersistentReserveOut;
        cdb[1] = action;
        cdb[2] = (byte)((scope << 4) | type);
        BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(5), (uint)listLength);
        return cdb;
    }

    public static byte[] BasicList(ulong rk, ulong sark, bool aptpl = false, bool allTgPt = false, bool specIpt = false)
    {
        var p = new byte[24];
        BinaryPrimitives.WriteUInt64BigEndian(p, rk);
        BinaryPrimitives.WriteUInt64BigEndian(p.AsSpan(8), sark);
        p[20] = (byte)((specIpt ? 0x08 : 0) | (allTgPt ? 0x04 : 0) | (aptpl ? 0x01 : 0));
        return p;
    }

    public CommandResult ProutRaw(ItNexus? n, byte action, byte type, byte[] list, int? cdbLength = null, int scope = 0) =>
        Execute(n, PrOutCdb(action, type, cdbLength ?? list.Length, scope), list);

    public CommandResult Register(ItNexus? n, ulong rk, ulong sark, bool aptpl = false, bool allTgPt = false) =>
        ProutRaw(n, 0x00, 0, BasicList(rk, sark, aptpl, allTgPt));

    public CommandResult RegisterAndIgnore(ItNexus? n, ulong sark, bool aptpl = false, bool allTgPt = false, ulong rk = 0) =>
        ProutRaw(n, 0x06, 0, BasicList(rk, sark, aptpl, allTgPt));

    public CommandResult Reserve(ItNexus? n, ulong key, PersistentReservationType type) =>
        ProutRaw(n, 0x01, (byte)type, BasicList(key, 0));

    public CommandResult Release(ItNexus? n, ulong key, PersistentReservationType type) =>
        ProutRaw(n, 0x02, (byte)type, BasicList(key, 0));

    public CommandResult Clear(ItNexus? n, ulong key) => ProutRaw(n, 0x03, 0, BasicList(key, 0));

    public CommandResult Preempt(ItNexus? n, ulong key, ulong sark, PersistentReservationType type, bool abort = false) =>
        ProutRaw(n, abort ? (byte)0x05 : (byte)0x04, (byte)type, BasicList(key, sark));

    public static byte[] SpecIptList(ulong sark, bool allTgPt, params byte[][] transportIds)
    {
        int tidLength = transportIds.Sum(t => t.Length);
        var p = new byte[28 + tidLength];
        BinaryPrimitives.WriteUInt64BigEndian(p.AsSpan(8), sark);
        p[20] = (byte)(0x08 | (allTgPt ? 0x04 : 0));
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(24), (uint)tidLength);
        int o = 28;
        foreach (var t in transportIds) { t.CopyTo(p, o); o += t.Length; }
        return p;
    }

    public static byte[] MoveList(ulong rk, ulong sark, ushort rtpi, byte[] transportId, bool unreg = false, bool aptpl = false)
    {
        var p = new byte[24 + transportId.Length];
        BinaryPrimitives.WriteUInt64BigEndian(p, rk);
        BinaryPrimitives.WriteUInt64BigEndian(p.AsSpan(8), sark);
        p[17] = (byte)((unreg ? 0x02 : 0) | (aptpl ? 0x01 : 0));
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(18), rtpi);
        BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(20), (uint)transportId.Length);
        transportId.CopyTo(p, 24);
        return p;
    }

    /// <summary>iSCSI TransportID as sg_persist builds it: format 00b (name) or 01b (name,i,0xISID).</summary>
    public static byte[] IscsiTid(string name, string? isid = null)
    {
        string text = isid is null ? name : $"{name},i,0x{isid}";
        int additional = Math.Max(20, (text.Length + 1 + 3) & ~3);
        var t = new byte[4 + additional];
        t[0] = (byte)((isid is null ? 0x00 : 0x40) | 0x05);
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(2), (ushort)additional);
        System.Text.Encoding.ASCII.GetBytes(text, t.AsSpan(4));
        return t;
    }

    public static byte[] AddressTid(ProtocolId protocol, ulong address)
    {
        var t = new byte[24];
        t[0] = (byte)protocol;
        BinaryPrimitives.WriteUInt64BigEndian(t.AsSpan(protocol == ProtocolId.Sas ? 4 : 8), address);
        return t;
    }

    // ---------------------------------------------------------------- PR IN

    public static byte[] PrInCdb(byte action, int allocation)
    {
        var cdb = new byte[10];
        cdb[0] = OperationCode.PersistentReserveIn;
        cdb[1] = action;
        BinaryPrimitives.WriteUInt16BigEndian(cdb.AsSpan(7), (ushort)allocation);
        return cdb;
    }

    public CommandResult PrIn(ItNexus? n, byte action, int allocation = 8192, int? bufferLength = null) =>
        Execute(n, PrInCdb(action, allocation), dataInLength: bufferLength ?? allocation);

    public (uint Generation, ulong[] Keys) ReadKeys(ItNexus? n = null)
    {
        var r = PrIn(n ?? Bound[0], 0x00);
        Assert.True(r.IsGood, $"READ KEYS: {r}");
        uint len = BinaryPrimitives.ReadUInt32BigEndian(r.Data.AsSpan(4));
        var keys = new ulong[len / 8];
        for (int i = 0; i < keys.Length; i++) keys[i] = BinaryPrimitives.ReadUInt64BigEndian(r.Data.AsSpan(8 + 8 * i));
        return (BinaryPrimitives.ReadUInt32BigEndian(r.Data), keys);
    }

    public uint Generation => ReadKeys().Generation;

    /// <summary>(key, type) of the reservation, or null.</summary>
    public (ulong Key, PersistentReservationType Type)? ReadReservation(ItNexus? n = null)
    {
        var r = PrIn(n ?? Bound[0], 0x01);
        Assert.True(r.IsGood, $"READ RESERVATION: {r}");
        uint len = BinaryPrimitives.ReadUInt32BigEndian(r.Data.AsSpan(4));
        if (len == 0) return null;
        Assert.Equal(16u, len);
        return (BinaryPrimitives.ReadUInt64BigEndian(r.Data.AsSpan(8)), (PersistentReservationType)(r.Data[21] & 0x0F));
    }

    // ---------------------------------------------------------------- ordinary commands

    public static readonly byte[] Read10 = [OperationCode.Read10, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    public static readonly byte[] Write10 = [OperationCode.Write10, 0, 0, 0, 0, 0, 0, 0, 1, 0];

    public bool CanRead(ItNexus? n) => Pr.IsAllowed(n, Read10);
    public bool CanWrite(ItNexus? n) => Pr.IsAllowed(n, Write10);

    public List<SenseCode> TakeUnitAttentions(ItNexus n)
    {
        var list = new List<SenseCode>();
        while (Pr.TryTakeUnitAttention(n, out var c)) list.Add(c);
        return list;
    }

    public void DrainAllUnitAttentions()
    {
        foreach (var n in Bound) TakeUnitAttentions(n);
    }
}

public static class ResultAssert
{
    public static void Good(CommandResult r) => Assert.True(r.IsGood, $"expected GOOD, got {r}");
    public static void Conflict(CommandResult r) => Assert.True(r.IsConflict, $"expected RESERVATION CONFLICT, got {r}");
    public static void Check(CommandResult r, SenseCode expected)
    {
        Assert.Equal(ScsiStatus.CheckCondition, r.Status);
        Assert.Equal(expected, r.Sense);
    }
}
