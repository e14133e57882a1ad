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
/// One precomputed byte per opcode; the few opcodes whose class depends on a service action or
/// a CDB bit are resolved in <see cref="Classify"/>. Nothing here allocates.
/// </summary>
public static class ReservationAccess
{
    private const byte Special = 0x0F;
    private const byte ClassMask = 0x0F;
    // Under an SPC-2 reservation held by another nexus only these pass (SPC-2 Table B.2 column A:
    // INQUIRY, REQUEST SENSE, REPORT LUNS, RELEASE, READ CAPACITY, START STOP UNIT with START=1).
    private const byte Spc2Pass = 0x10;

    private static readonly byte[] Table = Build();

    private static byte[] Build()
    {
        // Unknown and vendor opcodes default to Write: refusing an unknown command to a fenced
        // node is the only safe answer.
        var t = new byte[256];
        Array.Fill(t, (byte)AccessClass.Write);

        void Set(AccessClass c, params byte[] ops) { foreach (var op in ops) t[op] = (byte)c; }

        Set(AccessClass.Allowed,
            OperationCode.TestUnitReady, OperationCode.RequestSense, OperationCode.Inquiry,
            OperationCode.ReadCapacity10, OperationCode.ReportLuns,
            0x4D,        // LOG SENSE
            0x86, 0x87,  // ACCESS CONTROL IN/OUT
            OperationCode.PersistentReserveIn,
            // Reservation commands are judged by VolumeReservations.Execute, not by the gate.
            OperationCode.PersistentReserveOut,
            OperationCode.Reserve6, OperationCode.Release6, OperationCode.Reserve10, OperationCode.Release10);

        Set(AccessClass.Read,
            OperationCode.Read6, OperationCode.Read10, OperationCode.Read12, OperationCode.Read16,
            OperationCode.Verify10, OperationCode.Verify12, OperationCode.Verify16,
            0x34, 0x90,  // PRE-FETCH(10/16)
            0x8C);       // READ ATTRIBUTE

        // Every command that REPORT CAPABILITIES' ALLOW COMMANDS 011b says passes a Write
        // Exclusive reservation (SPC-4 REPORT CAPABILITIES; READ ATTRIBUTE is in Read above,
        // REPORT SUPPORTED OPERATION CODES / TASK MANAGEMENT FUNCTIONS under MAINTENANCE IN
        // below) must be in this class or a more lenient one, or the claim is false.
        Set(AccessClass.MetadataRead,
            OperationCode.ModeSense6, OperationCode.ModeSense10,
            0x3C,        // READ BUFFER
            0x1C,        // RECEIVE DIAGNOSTIC RESULTS
            0x84,        // RECEIVE COPY RESULTS
            // READ DEFECT DATA(10/12): SBC-3's table of commands allowed in the presence of
            // reservations lets it through Write Exclusive (SBC-2 and SPC-2 did not), and
            // ALLOW COMMANDS 011b says so.
            0x37, 0xB7,
            0xA2);       // SECURITY PROTOCOL IN

        // Explicitly Write (documentation; the default already says so): WRITE*, WRITE AND VERIFY,
        // WRITE SAME, UNMAP, COMPARE AND WRITE, ORWRITE (8Bh), XDWRITE, SYNCHRONIZE CACHE, FORMAT
        // UNIT (04h), SANITIZE (48h), MODE SELECT, LOG SELECT (4Ch), WRITE BUFFER (3Bh), SEND
        // DIAGNOSTIC, EXTENDED COPY (83h), SECURITY PROTOCOL OUT (B5h), MAINTENANCE OUT (A4h).

        t[OperationCode.StartStopUnit] = Special;
        t[OperationCode.PreventAllowMediumRemoval] = Special;
        t[OperationCode.ServiceActionIn16] = Special;
        t[OperationCode.MaintenanceIn] = Special;
        t[OperationCode.VariableLength] = Special;

        foreach (var op in new[] { OperationCode.Inquiry, OperationCode.RequestSense, OperationCode.ReportLuns,
                     OperationCode.Release6, OperationCode.Release10, OperationCode.ReadCapacity10 })
            t[op] |= Spc2Pass;
        return t;
    }

    /// <summary>The class of <paramref name="cdb"/>; <paramref name="spc2Pass"/> says whether it
    /// passes an SPC-2 reservation held by another nexus.</summary>
    public static AccessClass Classify(ReadOnlySpan<byte> cdb, out bool spc2Pass)
    {
        byte op = cdb[0];
        byte e = Table[op];
        spc2Pass = (e & Spc2Pass) != 0;
        if ((e & ClassMask) != Special)
            return (AccessClass)(e & ClassMask);

        switch (op)
        {
            case OperationCode.StartStopUnit:
                // SPC-2 Table B.2: START=1 with POWER CONDITION=0 (spinning up) is harmless;
                // stopping or a power condition change is a write-class command.
                if (cdb.Length > 4 && (cdb[4] & 0x01) != 0 && (cdb[4] & 0xF0) == 0)
                {
                    spc2Pass = true;
                    return AccessClass.Allowed;
                }
                return AccessClass.Write;
            case OperationCode.PreventAllowMediumRemoval:
                // PREVENT=0 (allow removal) changes nothing a reservation protects.
                return cdb.Length > 4 && (cdb[4] & 0x03) == 0 ? AccessClass.Allowed : AccessClass.Write;
            case OperationCode.ServiceActionIn16:
                if (cdb.Length > 1 && (cdb[1] & 0x1F) == OperationCode.ServiceActionReadCapacity16)
                {
                    spc2Pass = true;
                    return AccessClass.Allowed;
                }
                return AccessClass.Read; // GET LBA STATUS, REPORT REFERRALS
            case OperationCode.MaintenanceIn:
                return (cdb.Length > 1 ? cdb[1] & 0x1F : 0) switch
                {
                    0x05 or 0x0A or 0x0B or 0x0E or 0x0F => AccessClass.Allowed, // REPORT IDENTIFYING INFO, TPGS, ALIASES, PRIORITY, TIMESTAMP
                    _ => AccessClass.MetadataRead, // REPORT SUPPORTED OPCODES (0Ch) / TMFs (0Dh), others
                };
            case OperationCode.VariableLength:
                int sa = cdb.Length > 9 ? (cdb[8] << 8) | cdb[9] : 0;
                return sa is 0x0009 or 0x000A ? AccessClass.Read : AccessClass.Write; // READ(32), VERIFY(32)
            default:
                return AccessClass.Write;
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
