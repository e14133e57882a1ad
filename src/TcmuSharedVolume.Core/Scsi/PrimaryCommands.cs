using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Scsi;

/// <summary>
/// SPC-4 primary commands (the target_core_spc.c of this project): INQUIRY, TEST UNIT READY,
/// REQUEST SENSE, MODE SENSE/SELECT, REPORT SUPPORTED OPERATION CODES, START STOP UNIT,
/// PREVENT ALLOW MEDIUM REMOVAL and SEND DIAGNOSTIC, reached through <see cref="CommandTable"/>.
/// Reservation commands are not here: the table hands them to the reservation engine.
/// </summary>
/// <remarks>
/// Leniency: reserved bits are ignored except where they change the meaning of a command
/// (CMDDT, RDPROTECT/WRPROTECT, ANCHOR, PBDATA/LBDATA, NACA) — initiators, old ones in
/// particular, set obsolete bits (RELADR, SYNC_NV, IMMED on SYNCHRONIZE CACHE) and expect GOOD.
/// </remarks>
public static class PrimaryCommands
{
    // ---- the handlers of CommandTable's rows: the CDB is checked for length and NACA ----

    internal static void TestUnitReady(VolumePath path, ScsiCommand command, CdbReader cdb) => command.Good();
    // INQUIRY and REQUEST SENSE have this signature themselves (below).
    internal static void ModeSense6(VolumePath path, ScsiCommand command, CdbReader cdb) => ModeSense(path.Volume, command, cdb, ten: false);
    internal static void ModeSense10(VolumePath path, ScsiCommand command, CdbReader cdb) => ModeSense(path.Volume, command, cdb, ten: true);
    internal static void ModeSelect6(VolumePath path, ScsiCommand command, CdbReader cdb) => ModeSelect(path, command, cdb, ten: false);
    internal static void ModeSelect10(VolumePath path, ScsiCommand command, CdbReader cdb) => ModeSelect(path, command, cdb, ten: true);
    internal static void StartStopUnit(VolumePath path, ScsiCommand command, CdbReader cdb) => StartStopUnit(path.Volume, command, cdb);
    internal static void PreventAllowMediumRemoval(VolumePath path, ScsiCommand command, CdbReader cdb) => PreventAllowMediumRemoval(command, cdb);
    internal static void SendDiagnostic(VolumePath path, ScsiCommand command, CdbReader cdb) => SendDiagnostic(command, cdb);
    internal static void ReportSupportedOperationCodes(VolumePath path, ScsiCommand command, CdbReader cdb) =>
        ReportSupportedOperationCodes(path.Volume, command, cdb);

    // ---- shared by the primary and block commands ----

    /// <summary>
    /// A CDB shorter than its command's length (<paramref name="need"/>, from
    /// <see cref="CommandTable"/>), or with NACA set (ACA is not supported, SAM-5 5.9.1.2), is
    /// refused here so that the command code can read every field without checks.
    /// </summary>
    internal static bool CheckCdb(ScsiCommand command, int need)
    {
        var cdb = command.Cdb;
        if (cdb.Length < need)
        {
            command.CheckCondition(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(0));
            return false;
        }
        if ((cdb[need - 1] & 0x04) != 0)
        {
            command.CheckCondition(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(need - 1, 2));
            return false;
        }
        return true;
    }

    /// <summary>Copies parameter data to Data-In, cut to the allocation length (SPC-4 4.2.5.6)
    /// and to the fabric's buffer.</summary>
    internal static void DataIn(ScsiCommand command, ReadOnlySpan<byte> data, long allocationLength)
    {
        int n = (int)Math.Min(data.Length, allocationLength);
        int copied = command.Data.CopyFrom(0, data.Slice(0, n));
        command.Good(copied);
    }

    internal static void Invalid(ScsiCommand command, int @byte, int bit = -1) =>
        command.CheckCondition(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(@byte, bit));

    internal static void InvalidParameter(ScsiCommand command, int @byte, int bit = -1) =>
        command.CheckCondition(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(@byte, bit));

    // ---- INQUIRY (SPC-4 6.6) ----

    internal static void Inquiry(VolumePath path, ScsiCommand command, CdbReader cdb)
    {
        bool evpd = cdb.Bit(1, 0);
        byte page = cdb[2];
        int allocation = cdb.U16(3);
        if (cdb.Bit(1, 1))
        {
            Invalid(command, 1, 1); // CMDDT: obsolete, not supported
            return;
        }
        Span<byte> b = stackalloc byte[VitalProductData.MaxPageLength];
        int n;
        if (!evpd)
        {
            if (page != 0)
            {
                Invalid(command, 2);
                return;
            }
            n = VitalProductData.Standard(b);
        }
        else
        {
            n = VitalProductData.Page(page, path, b);
            if (n < 0)
            {
                Invalid(command, 2);
                return;
            }
        }
        DataIn(command, b.Slice(0, n), allocation);
    }

    // ---- REQUEST SENSE (SPC-4 6.39) ----

    internal static void RequestSense(VolumePath path, ScsiCommand command, CdbReader cdb)
    {
        // Sense of a failed command is always delivered with its CHECK CONDITION (autosense),
        // so the only sense that can be pending here is a unit attention. The dispatcher does
        // not report one on REQUEST SENSE (SAM-5 5.14); SPC-4 REQUEST SENSE returns it as the
        // parameter data instead, with GOOD, and that clears it for this I_T nexus (no UA
        // interlock). Otherwise NO SENSE. Either in the format DESC asks for.
        var code = path.Volume.Reservations.TryTakeUnitAttention(path.Nexus, out var ua) ? ua : SenseCode.NoSense;
        Span<byte> sense = stackalloc byte[SenseData.MaxLength];
        int n = SenseData.Write(sense, code, descriptorFormat: cdb.Bit(1, 0));
        DataIn(command, sense.Slice(0, n), cdb[4]);
    }

    // ---- MODE SENSE (SPC-4 6.11, 6.12) ----

    private static void ModeSense(Volume volume, ScsiCommand command, CdbReader cdb, bool ten)
    {
        bool dbd = cdb.Bit(1, 3);
        bool llbaa = ten && cdb.Bit(1, 4);
        int pc = cdb.Bits(2, 7, 6);
        byte page = (byte)cdb.Bits(2, 5, 0);
        byte subpage = cdb[3];
        int allocation = ten ? cdb.U16(7) : cdb[4];

        if (pc == (int)ModePages.PageControl.Saved)
        {
            command.CheckCondition(SenseCode.SavingParametersNotSupported, FieldPointer.Cdb(2, 7));
            return;
        }
        if (page != ModePages.AllPages && ModePages.LengthOf(page) == 0)
        {
            Invalid(command, 2, 5);
            return;
        }
        if (subpage is not (0x00 or 0xFF)) // we have no subpages; FFh asks for "all subpages" too
        {
            Invalid(command, 3);
            return;
        }

        Span<byte> b = stackalloc byte[128];
        int header = ten ? 8 : 4;
        b.Slice(0, header).Clear();
        int at = header;
        int descriptorLength = dbd ? 0 : llbaa ? 16 : 8;
        var control = (ModePages.PageControl)pc;
        if (descriptorLength > 0)
        {
            b.Slice(at, descriptorLength).Clear();
            if (control != ModePages.PageControl.Changeable) // nothing in it can be changed
            {
                long blocks = volume.BlockCount;
                if (llbaa)
                {
                    Be.U64(b, at, (ulong)blocks);
                    Be.U32(b, at + 12, (uint)volume.BlockSize);
                }
                else
                {
                    Be.U32(b, at, blocks > uint.MaxValue ? uint.MaxValue : (uint)blocks);
                    b[at + 5] = (byte)(volume.BlockSize >> 16);
                    b[at + 6] = (byte)(volume.BlockSize >> 8);
                    b[at + 7] = (byte)volume.BlockSize;
                }
            }
            at += descriptorLength;
        }
        if (page == ModePages.AllPages)
        {
            at += ModePages.Write(ModePages.ReadWriteErrorRecovery, volume, control, b.Slice(at));
            at += ModePages.Write(ModePages.Caching, volume, control, b.Slice(at));
            at += ModePages.Write(ModePages.Control, volume, control, b.Slice(at));
        }
        else
        {
            at += ModePages.Write(page, volume, control, b.Slice(at));
        }

        // Device-specific parameter (SBC-3 6.4.2): WP=0, DPOFUA=1 — FUA and DPO are honoured.
        const byte deviceSpecific = 0x10;
        if (ten)
        {
            Be.U16(b, 0, at - 2);
            b[3] = deviceSpecific;
            b[4] = (byte)(descriptorLength == 16 ? 0x01 : 0x00); // LONGLBA
            Be.U16(b, 6, descriptorLength);
        }
        else
        {
            b[0] = (byte)(at - 1);
            b[2] = deviceSpecific;
            b[3] = (byte)descriptorLength;
        }
        DataIn(command, b.Slice(0, at), allocation);
    }

    // ---- MODE SELECT (SPC-4 6.9, 6.10) ----

    private static void ModeSelect(VolumePath path, ScsiCommand command, CdbReader cdb, bool ten)
    {
        var volume = path.Volume;
        bool pf = cdb.Bit(1, 4);
        bool sp = cdb.Bit(1, 0);
        int length = ten ? cdb.U16(7) : cdb[4];
        if (sp)
        {
            Invalid(command, 1, 0); // pages cannot be saved
            return;
        }
        if (length == 0)
        {
            command.Good();
            return;
        }
        if (!pf)
        {
            Invalid(command, 1, 4); // vendor-specific page format: we only speak the standard one
            return;
        }
        int header = ten ? 8 : 4;
        Span<byte> list = stackalloc byte[512];
        if (length > list.Length || command.Data.Length < length || length < header)
        {
            command.CheckCondition(SenseCode.ParameterListLengthError);
            return;
        }
        list = list.Slice(0, command.Data.CopyTo(0, list.Slice(0, length)));
        var p = new CdbReader(list);

        int mediumType = ten ? 2 : 1;
        if (p[mediumType] != 0)
        {
            InvalidParameter(command, mediumType);
            return;
        }
        int deviceSpecific = ten ? 3 : 2;
        if (p.Bit(deviceSpecific, 7))
        {
            InvalidParameter(command, deviceSpecific, 7); // WP cannot be set
            return;
        }
        int descriptorLength = ten ? p.U16(6) : p[3];
        bool longLba = ten && p.Bit(4, 0);
        if (descriptorLength != 0 && descriptorLength != (longLba ? 16 : 8))
        {
            InvalidParameter(command, ten ? 6 : 3);
            return;
        }
        if (header + descriptorLength > list.Length)
        {
            command.CheckCondition(SenseCode.ParameterListLengthError);
            return;
        }
        if (descriptorLength > 0 && !CheckBlockDescriptor(volume, command, p, header, longLba)) return;

        bool wce = volume.WriteCacheEnabled;
        bool dsense = volume.DescriptorSense;
        Span<byte> current = stackalloc byte[32];
        Span<byte> changeable = stackalloc byte[32];
        int at = header + descriptorLength;
        while (at < list.Length)
        {
            if (at + 2 > list.Length)
            {
                command.CheckCondition(SenseCode.ParameterListLengthError);
                return;
            }
            byte code = (byte)(p[at] & 0x3F);
            if (p.Bit(at, 6))
            {
                InvalidParameter(command, at, 6); // SPF: no subpages here
                return;
            }
            int n = ModePages.LengthOf(code);
            if (n == 0)
            {
                InvalidParameter(command, at, 5);
                return;
            }
            if (p[at + 1] != n - 2)
            {
                InvalidParameter(command, at + 1);
                return;
            }
            if (at + n > list.Length)
            {
                command.CheckCondition(SenseCode.ParameterListLengthError);
                return;
            }
            ModePages.Write(code, volume, ModePages.PageControl.Current, current);
            ModePages.Write(code, volume, ModePages.PageControl.Changeable, changeable);
            for (int i = 2; i < n; i++)
            {
                int diff = (p[at + i] ^ current[i]) & ~changeable[i] & 0xFF;
                if (diff != 0)
                {
                    InvalidParameter(command, at + i, 31 - int.LeadingZeroCount(diff));
                    return;
                }
            }
            if (code == ModePages.Caching) wce = p.Bit(at + 2, 2);
            if (code == ModePages.Control) dsense = p.Bit(at + 2, 2);
            at += n;
        }

        // Turning the write cache off: what the cache holds must be on the medium first, since
        // from now on GOOD for a write means it is durable.
        if (volume.WriteCacheEnabled && !wce && !Flush(volume, command)) return;
        bool changed = volume.WriteCacheEnabled != wce || volume.DescriptorSense != dsense;
        volume.WriteCacheEnabled = wce;
        volume.DescriptorSense = dsense;
        // The pages are the volume's, shared by every nexus: the others must hear of the change
        // (SPC-4 6.11, MODE PARAMETERS CHANGED).
        if (changed) volume.Reservations.AddUnitAttentionForAll(SenseCode.ModeParametersChanged, except: path.Nexus);
        command.Good();
    }

    private static bool CheckBlockDescriptor(Volume volume, ScsiCommand command, CdbReader p, int at, bool longLba)
    {
        // SBC-3 6.4.4: the block count may be 0 (no change) or the current one; the block size
        // must be the current one — this target cannot reformat.
        ulong blocks = longLba ? p.U64(at) : p.U32(at);
        ulong current = longLba ? (ulong)volume.BlockCount : (ulong)Math.Min(volume.BlockCount, uint.MaxValue);
        if (blocks != 0 && blocks != current)
        {
            InvalidParameter(command, at);
            return false;
        }
        uint blockLength = longLba ? p.U32(at + 12) : p.U24(at + 5);
        if (blockLength != volume.BlockSize)
        {
            InvalidParameter(command, longLba ? at + 12 : at + 5);
            return false;
        }
        return true;
    }

    /// <summary>
    /// Makes the volume's completed writes durable; false (with WRITE ERROR) if it failed now or
    /// a flush failed before and the error is still latched (<see cref="Volume.LatchedWriteErrno"/>):
    /// a flush that succeeds after a failed one proves nothing about the data that failed.
    /// </summary>
    internal static bool Flush(Volume volume, ScsiCommand command)
    {
        try
        {
            // Flushed even when latched: data written since is made as durable as it can be.
            volume.Store.Flush();
        }
        catch (BackingStoreException e)
        {
            Diagnostics.Log.Error($"flush of {volume.Identity.UnitSerial} failed: {e.Message}");
            // Any errno, ENOSPC included: at fdatasync time it means delayed writeback failed.
            volume.LatchWriteError(e.Errno);
            BlockCommands.StoreFailed(command, e.Errno, write: true);
            return false;
        }
        if (volume.LatchedWriteErrno != 0)
        {
            command.CheckCondition(SenseCode.WriteError);
            return false;
        }
        return true;
    }

    // ---- START STOP UNIT (SBC-3 5.25) ----

    private static void StartStopUnit(Volume volume, ScsiCommand command, CdbReader cdb)
    {
        int powerCondition = cdb.Bits(4, 7, 4);
        bool noFlush = cdb.Bit(4, 2);
        bool loej = cdb.Bit(4, 1);
        bool start = cdb.Bit(4, 0);
        switch (powerCondition)
        {
            case 0x0: // START_VALID
                if (loej && !start)
                {
                    Invalid(command, 4, 1); // eject: there is no removable medium
                    return;
                }
                // A stop is how Linux's sd says "shutting down": make the data durable, but keep
                // serving — other paths of the shared volume still use it.
                if (!start && !noFlush && !Flush(volume, command)) return;
                command.Good();
                return;
            case 0x1 or 0x2 or 0x3 or 0x7 or 0xA or 0xB:
                // ACTIVE, IDLE, STANDBY, LU_CONTROL, FORCE_IDLE_0, FORCE_STANDBY_0: accepted; a
                // volume has no power states, so there is nothing to change.
                command.Good();
                return;
            default:
                Invalid(command, 4, 7);
                return;
        }
    }

    // ---- PREVENT ALLOW MEDIUM REMOVAL (SPC-4 6.13) ----

    private static void PreventAllowMediumRemoval(ScsiCommand command, CdbReader cdb)
    {
        // The medium is not removable (RMB=0), so preventing its removal is already true:
        // PREVENT 00b and 01b are GOOD and change nothing. 10b/11b concern medium changers.
        if (cdb.Bits(4, 1, 0) > 1)
        {
            Invalid(command, 4, 1);
            return;
        }
        command.Good();
    }

    // ---- SEND DIAGNOSTIC (SPC-4 6.42) ----

    private static void SendDiagnostic(ScsiCommand command, CdbReader cdb)
    {
        int selfTestCode = cdb.Bits(1, 7, 5);
        bool selfTest = cdb.Bit(1, 2);
        int length = cdb.U16(3);
        if (selfTestCode != 0)
        {
            Invalid(command, 1, 7); // no background/foreground self-tests
            return;
        }
        if (!selfTest && length != 0)
        {
            InvalidParameter(command, 0); // no diagnostic pages
            return;
        }
        // SELFTEST=1: the default self-test. The store is open and answering, which is all a
        // self-test of a volume could show.
        command.Good();
    }

    // ---- MAINTENANCE IN: REPORT SUPPORTED OPERATION CODES (SPC-4 6.35) ----

    private static void ReportSupportedOperationCodes(Volume volume, ScsiCommand command, CdbReader cdb)
    {
        bool rctd = cdb.Bit(2, 7);
        int option = cdb.Bits(2, 2, 0);
        byte op = cdb[3];
        int serviceAction = cdb.U16(4);
        uint allocation = cdb.U32(6);

        Span<byte> b = stackalloc byte[SupportedOperationCodes.AllLength(rctd: true)];
        int n;
        bool hasServiceActions = SupportedOperationCodes.OpcodeHasServiceActions(op);
        switch (option)
        {
            case 0:
                n = SupportedOperationCodes.WriteAll(volume, rctd, b);
                break;
            case 1:
                if (hasServiceActions)
                {
                    Invalid(command, 3);
                    return;
                }
                n = SupportedOperationCodes.WriteOne(volume, SupportedOperationCodes.Find(op, -1), rctd, b);
                break;
            case 2:
                if (!hasServiceActions && SupportedOperationCodes.Find(op, -1) >= 0)
                {
                    Invalid(command, 3);
                    return;
                }
                n = SupportedOperationCodes.WriteOne(volume, SupportedOperationCodes.Find(op, serviceAction), rctd, b);
                break;
            case 3: // SPC-4 r37: the service action is used only if the opcode has service actions
                n = SupportedOperationCodes.WriteOne(volume,
                    SupportedOperationCodes.Find(op, hasServiceActions ? serviceAction : -1), rctd, b);
                break;
            default:
                Invalid(command, 2, 2);
                return;
        }
        DataIn(command, b.Slice(0, n), allocation);
    }
}
