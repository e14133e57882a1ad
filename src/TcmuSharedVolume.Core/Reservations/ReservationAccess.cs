using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

/// <summary>How a command fares against a reservation it does not hold (docs/reservations.md §11).</summary>
public enum AccessClass : byte
{
    /// <summary>Never blocked by a persistent reservation (INQUIRY, TUR, READ CAPACITY, ...).</summary>
    Allowed = 0,
    /// <summary>Reads the medium: blocked under EA, and for unregistered nexuses under EARO/EAAR.</summary>
    Read = 1,
    /// <summary>Reads metadata (MODE SENSE, REPORT SUPPORTED OPCODES, ...): same columns as Read.</summary>
    MetadataRead = 2,
    /// <summary>Changes the medium or the LU's state, SYNCHRONIZE CACHE included: blocked under WE/EA,
    /// and for unregistered nexuses under the RO/AR types.</summary>
    Write = 3,
}

/// <summary>
/// The access table of docs/reservations.md §11: the SCST / FreeBSD CTL / SPC-2 Annex B consensus,
/// deliberately not LIO's "data-out means write" rule (which lets an unregistered node's
/// SYNCHRONIZE CACHE through a WERO fence and blocks READ CAPACITY under EA).
/// The classes are those of <see cref="CommandTable"/>'s rows, precomputed once into one byte per
/// opcode; an opcode whose class depends on its service action looks it up in a second array,
/// and the two whose class depends on a CDB bit are resolved in <see cref="Classify"/>.
/// Nothing here allocates.
/// </summary>
public static class ReservationAccess
{
    private const byte ClassMask = 0x0F;
    private const byte ByServiceAction = 0x0D;
    private const byte StartStopRule = 0x0E;
    private const byte PreventAllowRule = 0x0F;
    // Under an SPC-2 reservation held by another nexus only these pass (SPC-2 Table B.2 column A:
    // INQUIRY, REQUEST SENSE, REPORT LUNS, RELEASE, READ CAPACITY, START STOP UNIT with START=1).
    private const byte Spc2Pass = 0x10;
    // A slot: the class of each service action below 32, then the one for every larger one.
    private const int SlotLength = CommandTable.ServiceActionSlots + 1;

    private static readonly byte[] Table;
    private static readonly byte[] SlotOf;
    private static readonly byte[] ServiceActionTable;

    static ReservationAccess()
    {
        // Unknown and vendor opcodes default to Write: refusing an unknown command to a fenced
        // node is the only safe answer.
        var t = new byte[256];
        Array.Fill(t, (byte)AccessClass.Write);
        var slotOf = new byte[256];
        var bySa = new List<byte>();
        static byte Encode(in Command e) => (byte)((byte)e.Access | (e.Has(CommandFlags.Spc2Pass) ? Spc2Pass : 0));
        for (int op = 0; op < 256; op++)
        {
            var rows = Array.FindAll(CommandTable.Entries, e => e.Op == op);
            if (rows.Length == 0) continue;
            byte first = Encode(rows[0]);
            if (rows[0].Has(CommandFlags.AllowedWhenStarting)) t[op] = StartStopRule;
            else if (rows[0].Has(CommandFlags.AllowedWhenNotPreventing)) t[op] = PreventAllowRule;
            else if (Array.TrueForAll(rows, e => Encode(e) == first)) t[op] = first;
            else
            {
                // Service actions not named take the opcode's "other" row, or Write.
                int slot = bySa.Count / SlotLength;
                int other = Array.FindIndex(rows, e => e.ServiceAction == CommandTable.OtherServiceActions);
                byte fallback = other >= 0 ? Encode(rows[other]) : (byte)AccessClass.Write;
                for (int sa = 0; sa < SlotLength; sa++) bySa.Add(fallback);
                foreach (var e in rows)
                    if (e.HasServiceAction) bySa[slot * SlotLength + e.ServiceAction] = Encode(e);
                t[op] = ByServiceAction;
                slotOf[op] = (byte)slot;
            }
        }
        Table = t;
        SlotOf = slotOf;
        ServiceActionTable = bySa.ToArray();
    }

    /// <summary>The class of <paramref name="cdb"/>; <paramref name="spc2Pass"/> says whether it
    /// passes an SPC-2 reservation held by another nexus.</summary>
    public static AccessClass Classify(ReadOnlySpan<byte> cdb, out bool spc2Pass)
    {
        byte op = cdb[0];
        byte e = Table[op];
        byte c = (byte)(e & ClassMask);
        if (c < ByServiceAction)
        {
            spc2Pass = (e & Spc2Pass) != 0;
            return (AccessClass)c;
        }
        spc2Pass = false;
        switch (c)
        {
            case StartStopRule:
                // SPC-2 Table B.2: START=1 with POWER CONDITION=0 (spinning up) is harmless;
                // stopping or a power condition change is a write-class command.
                if (cdb.Length > 4 && (cdb[4] & 0x01) != 0 && (cdb[4] & 0xF0) == 0)
                {
                    spc2Pass = true;
                    return AccessClass.Allowed;
                }
                return AccessClass.Write;
            case PreventAllowRule:
                // PREVENT=0 (allow removal) changes nothing a reservation protects.
                return cdb.Length > 4 && (cdb[4] & 0x03) == 0 ? AccessClass.Allowed : AccessClass.Write;
            default:
                int sa = CommandTable.ServiceActionOf(cdb);
                e = ServiceActionTable[SlotOf[op] * SlotLength + Math.Min(sa, CommandTable.ServiceActionSlots)];
                spc2Pass = (e & Spc2Pass) != 0;
                return (AccessClass)(e & ClassMask);
        }
    }

    /// <summary>
    /// The access decision for a nexus that is not (or is) the holder of a persistent reservation
    /// of type <paramref name="type"/>. Under WEAR/EAAR a registered nexus is a holder.
    /// </summary>
    public static bool IsAllowed(AccessClass access, PersistentReservationType type, bool holder, bool registered)
    {
        if (access == AccessClass.Allowed || holder || type == PersistentReservationType.None)
            return true;
        bool readClass = access is AccessClass.Read or AccessClass.MetadataRead;
        return type switch
        {
            PersistentReservationType.WriteExclusive => readClass,
            PersistentReservationType.ExclusiveAccess => false,
            PersistentReservationType.WriteExclusiveRegistrantsOnly or
            PersistentReservationType.WriteExclusiveAllRegistrants => readClass || registered,
            _ => registered, // EARO, EAAR
        };
    }
}
