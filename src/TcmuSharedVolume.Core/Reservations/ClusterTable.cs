using System.Buffers.Binary;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

/// <summary>
/// What each host must do about a committed change besides loading the new table
/// (docs/reservations.md §18): the unit attentions it raised, and the nexuses whose commands
/// must be drained before the host acknowledges (PREEMPT AND ABORT).
/// </summary>
public sealed record TableChangeEffects(
    IReadOnlyList<(ItNexus Nexus, SenseCode Code)> UnitAttentions,
    IReadOnlyList<ItNexus> Preempted)
{
    public static readonly TableChangeEffects None = new([], []);

    /// <summary>
    /// The unit attentions owed for changes a host did not apply one by one (it was stopped, or
    /// fenced and rejoined), from the table it last knew and the one it reads now (docs/reservations.md
    /// §18). While a host is away, its own nexuses can only lose registrations: a nexus registers
    /// through its own target port, which is on that host. So for each nexus registered before:
    /// gone with every other registration is a CLEAR (RESERVATIONS PREEMPTED), gone alone a
    /// preemption (REGISTRATIONS PREEMPTED); still registered while the reservation it lived under
    /// was released (a Registrants Only or All Registrants type, §6) or changed type (a
    /// preemption, §8 cases C and E, but for the new holder) is RESERVATIONS RELEASED. Several changes in between
    /// collapse into what the two tables show (§14 lists what each change raises).
    /// </summary>
    public static IReadOnlyList<(ItNexus Nexus, SenseCode Code)> Missed(PersistedReservations before, PersistedReservations after)
    {
        var owed = new List<(ItNexus, SenseCode)>();
        bool released = before.Type != PersistentReservationType.None && after.Type != before.Type
            && (after.Type != PersistentReservationType.None || before.Type.IsRegistrantsType());
        // The holder after a change of type made it (§8 case C): the issuer is not told.
        ItNexus? holder = after.Type != PersistentReservationType.None && !after.Type.IsAllRegistrants()
            && (uint)after.HolderIndex < (uint)after.Registrations.Count ? after.Registrations[after.HolderIndex].Nexus : null;
        var seen = new HashSet<ItNexus>();
        foreach (var r in before.Registrations)
        {
            if (!seen.Add(r.Nexus)) continue;
            bool registered = false;
            foreach (var a in after.Registrations)
                if (a.Nexus.Equals(r.Nexus)) { registered = true; break; }
            if (!registered)
                owed.Add((r.Nexus, after.Registrations.Count == 0 ? SenseCode.ReservationsPreempted : SenseCode.RegistrationsPreempted));
            else if (released && !r.Nexus.Equals(holder))
                owed.Add((r.Nexus, SenseCode.ReservationsReleased));
        }
        return owed;
    }
}

/// <summary>
/// One version of a volume's reservation table shared by several target hosts: the persistent
/// part, the PRgeneration (every host reports the same one), and the change that made it.
/// Version 0 is the empty table that exists before any change.
/// </summary>
public sealed record ClusterTable(ulong Version, uint Generation, PersistedReservations Reservations, TableChangeEffects Change)
{
    public static readonly ClusterTable Initial = new(0, 0, PersistedReservations.Empty, TableChangeEffects.None);
}

/// <summary>
/// The table of a volume that several hosts serve, in a store they all reach (RADOS). Changed
/// only by a guarded write: a commit names the version it was decided on and fails if another
/// host committed first. The engine stays free of I/O; the protocol lives behind this interface.
/// </summary>
public interface IClusterReservationStore : IDisposable
{
    /// <summary>
    /// Starts following the table: from now on every change another host announces is passed to
    /// <paramref name="apply"/> (on the store's own thread, in order), which returns true once
    /// the host has loaded it and drained what it must; only then is the change acknowledged.
    /// Returns the table as it is now.
    /// </summary>
    ClusterTable Join(Func<ClusterTable, bool> apply);

    /// <summary>
    /// The table this host had loaded when it last served the volume (before a restart), kept
    /// on this host; null when it has none. A host that starts owes its nexuses the unit
    /// attentions of the changes made since (<see cref="TableChangeEffects.Missed"/>).
    /// </summary>
    ClusterTable? LastKnown();

    /// <summary>
    /// Writes <paramref name="next"/> if the stored table is still version
    /// <c>next.Version - 1</c>. Returns false, with the newer table in <paramref name="current"/>,
    /// if another host changed it first: the caller decides again on that table.
    /// </summary>
    /// <exception cref="ClusterTableUnavailableException">This host is fenced or rejoining.</exception>
    bool TryCommit(ClusterTable next, out ClusterTable current);

    /// <summary>
    /// Tells every other host about the committed table and returns true once each has applied
    /// it, or has been fenced so that it can no longer write under the old one. False: some
    /// host did neither, and the change must not be reported as complete.
    /// </summary>
    bool Announce(ClusterTable committed);
}

/// <summary>This host cannot reach the shared table now (fenced, rejoining): NOT READY, not a hardware error.</summary>
public sealed class ClusterTableUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The stored form of a <see cref="ClusterTable"/>: the object's whole content and the payload
/// of the notification that announces it, so that a host applies exactly what was committed.
/// Little-endian, bounds-checked; anything else is a <see cref="ReservationStoreException"/>.
/// </summary>
public static class ClusterTableCodec
{
    private static ReadOnlySpan<byte> Magic => "TSVPRCL1"u8;

    public static byte[] Encode(ClusterTable t, ulong origin)
    {
        var w = new FileReservationStore.ArrayBufferWriterLite();
        foreach (byte b in Magic) w.Byte(b);
        w.UInt64(t.Version);
        w.UInt64(origin);
        w.Int32((int)t.Generation);
        var r = t.Reservations;
        w.Byte(r.Aptpl ? (byte)1 : (byte)0);
        w.Byte((byte)r.Type);
        w.Int32(r.HolderIndex);
        w.Int32(r.Registrations.Count);
        foreach (var reg in r.Registrations) w.Registration(reg);
        w.Int32(t.Change.UnitAttentions.Count);
        foreach (var (n, code) in t.Change.UnitAttentions)
        {
            w.Nexus(n);
            w.Byte((byte)code.Key);
            w.Byte(code.Asc);
            w.Byte(code.Ascq);
        }
        w.Int32(t.Change.Preempted.Count);
        foreach (var n in t.Change.Preempted) w.Nexus(n);
        return w.Written.ToArray();
    }

    /// <summary>The table and the id of the host instance that committed it.</summary>
    public static (ClusterTable Table, ulong Origin) Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length < Magic.Length || !data[..Magic.Length].SequenceEqual(Magic))
            throw new ReservationStoreException($"the shared reservation table is not one ({data.Length} bytes, no {System.Text.Encoding.ASCII.GetString(Magic)} header)");
        try
        {
            var r = new FileReservationStore.PayloadReader(data[Magic.Length..]);
            ulong version = r.UInt64();
            ulong origin = r.UInt64();
            uint generation = (uint)r.Int32();
            bool aptpl = r.Byte() != 0;
            var type = (PersistentReservationType)r.Byte();
            int holder = r.Int32();
            int count = Count(ref r);
            var regs = new Registration[count];
            for (int i = 0; i < count; i++) regs[i] = r.Registration();
            if (type != PersistentReservationType.None && !type.IsAllRegistrants() && (uint)holder >= (uint)count)
                throw new ReservationStoreException($"shared reservation table version {version}: reservation {type} names registration {holder} of {count}");
            count = Count(ref r);
            var uas = new (ItNexus, SenseCode)[count];
            for (int i = 0; i < count; i++)
                uas[i] = (r.Nexus(), new SenseCode((SenseKey)r.Byte(), r.Byte(), r.Byte()));
            count = Count(ref r);
            var preempted = new ItNexus[count];
            for (int i = 0; i < count; i++) preempted[i] = r.Nexus();
            if (!r.End) throw new ReservationStoreException($"shared reservation table version {version}: trailing bytes");
            return (new ClusterTable(version, generation, new PersistedReservations(aptpl, regs, type, holder), new TableChangeEffects(uas, preempted)), origin);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new ReservationStoreException($"the shared reservation table is truncated or corrupt: {e.Message}", e);
        }
    }

    private static int Count(ref FileReservationStore.PayloadReader r)
    {
        int n = r.Int32();
        if (n < 0 || n > 1 << 20) throw new ArgumentOutOfRangeException(nameof(n), $"count {n}");
        return n;
    }
}
