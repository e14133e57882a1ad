using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Scsi;

/// <summary>
/// INQUIRY data: the standard page and the VPD pages (SPC-4 6.6, 7.8; SBC-3 6.6). Everything
/// that identifies the disk comes from the <see cref="Volume"/>, so every path answers the same;
/// only the target port designators in page 83h (relative target port, target port group)
/// belong to the path.
/// </summary>
internal static class VitalProductData
{
    public const byte SupportedPages = 0x00;
    public const byte UnitSerialNumber = 0x80;
    public const byte DeviceIdentification = 0x83;
    public const byte ExtendedInquiry = 0x86;
    public const byte BlockLimits = 0xB0;
    public const byte BlockDeviceCharacteristics = 0xB1;
    public const byte LogicalBlockProvisioning = 0xB2;

    /// <summary>Longest page we build (83h with a 64-character serial): fits a stack buffer.</summary>
    public const int MaxPageLength = 256;

    /// <summary>SPC-4 6.6.2 standard INQUIRY data, 74 bytes with three version descriptors.</summary>
    public static int Standard(Span<byte> b)
    {
        b.Slice(0, 74).Clear();
        b[0] = 0x00;          // peripheral qualifier 0, device type 00h (direct access block)
        b[1] = 0x00;          // RMB=0: not removable
        b[2] = 0x06;          // VERSION: SPC-4
        b[3] = 0x10 | 0x02;   // HISUP (hierarchical LUNs, as LIO) | RESPONSE DATA FORMAT 2
        b[4] = 74 - 5;        // ADDITIONAL LENGTH
        b[5] = TargetPortGroups.TpgsImplicit; // SCCS=0, ACC=0, TPGS=01b (implicit ALUA), 3PC=0, PROTECT=0
        b[6] = 0x00;          // ENCSERV, MULTIP, ADDR16
        b[7] = 0x02;          // CMDQUE: command queuing (the TCMU ring carries many commands)
        Be.Ascii(b, 8, 8, VolumeIdentity.Vendor);
        Be.Ascii(b, 16, 16, VolumeIdentity.Product);
        Be.Ascii(b, 32, 4, VolumeIdentity.Revision);
        // Version descriptors (SPC-4 Table 147), bytes 58..: SAM-5, SPC-4, SBC-3, "no version claimed".
        Be.U16(b, 58, 0x00A0);
        Be.U16(b, 60, 0x0460);
        Be.U16(b, 62, 0x04C0);
        return 74;
    }

    /// <summary>Builds a VPD page; returns its length, or -1 when the page is not supported.</summary>
    public static int Page(byte code, VolumePath path, Span<byte> b)
    {
        var volume = path.Volume;
        b.Slice(0, MaxPageLength).Clear();
        b[1] = code;
        int n;
        switch (code)
        {
            case SupportedPages:
                ReadOnlySpan<byte> pages = [SupportedPages, UnitSerialNumber, DeviceIdentification, ExtendedInquiry,
                    BlockLimits, BlockDeviceCharacteristics, LogicalBlockProvisioning];
                pages.CopyTo(b.Slice(4));
                n = 4 + pages.Length;
                break;

            case UnitSerialNumber:
                string serial = volume.Identity.UnitSerial;
                Be.Ascii(b, 4, serial.Length, serial);
                n = 4 + serial.Length;
                break;

            case DeviceIdentification:
                n = DeviceIdentificationPage(path, b);
                break;

            case ExtendedInquiry:
                // SPC-4 7.8.7. TCMU does not pass task attributes to userspace, so only SIMPLE is
                // claimed. V_SUP (byte 6 bit 0): there is a volatile cache (the page cache) that
                // SYNCHRONIZE CACHE flushes; NV_SUP (bit 1) stays 0, there is no non-volatile
                // cache. LUICLR: a unit attention is cleared for one I_T nexus only.
                b[5] = 0x01;       // SIMPSUP
                b[6] = 0x01;       // V_SUP
                b[7] = 0x01;       // LUICLR
                b[13] = SenseData.MaxLength; // MAXIMUM SUPPORTED SENSE DATA LENGTH
                n = 64;
                break;

            case BlockLimits:
                BlockLimitsPage(volume, b);
                n = 64;
                break;

            case BlockDeviceCharacteristics:
                // SBC-3 6.6.2. MEDIUM ROTATION RATE 0: not reported — the store may be a file on
                // a disk or on flash, and claiming "non-rotating" would be a guess.
                Be.U16(b, 4, 0x0000);
                b[7] = 0x00;       // NOMINAL FORM FACTOR not reported
                n = 64;
                break;

            case LogicalBlockProvisioning:
                n = LogicalBlockProvisioningPage(volume, b);
                break;

            default:
                return -1;
        }
        Be.U16(b, 2, n - 4);
        return n;
    }

    private static int DeviceIdentificationPage(VolumePath path, Span<byte> b)
    {
        var identity = path.Volume.Identity;
        int at = 4;

        // NAA locally assigned (SPC-4 7.8.6.6.3): binary, logical unit, type 3h, 8 bytes.
        b[at] = 0x01;
        b[at + 1] = 0x03;
        b[at + 3] = 8;
        Be.U64(b, at + 4, identity.NaaLocallyAssigned);
        at += 12;

        // T10 vendor ID (SPC-4 7.8.6.4): ASCII, logical unit, type 1h: vendor then unit serial.
        string serial = identity.UnitSerial;
        int idLength = 8 + serial.Length;
        b[at] = 0x02;
        b[at + 1] = 0x01;
        b[at + 3] = (byte)idLength;
        Be.Ascii(b, at + 4, 8, VolumeIdentity.Vendor);
        Be.Ascii(b, at + 12, serial.Length, serial);
        at += 4 + idLength;

        // Relative target port (SPC-4 7.8.6.7): PIV=1, target port association, type 4h.
        // Only a bound path knows its target port. REPORT TARGET PORT GROUPS lists this
        // identifier in the group named next.
        if (path.Nexus is { } nexus)
        {
            b[at] = (byte)(((int)nexus.Target.Protocol << 4) | 0x01);
            b[at + 1] = 0x80 | 0x10 | 0x04;
            b[at + 3] = 4;
            Be.U16(b, at + 6, nexus.Target.RelativeTargetPortId);
            at += 8;
        }

        // Target port group (SPC-4 7.8.6.8): with TPGS set, initiators (Linux's scsi_dh_alua)
        // find their group here and refuse ALUA without it.
        at += TargetPortGroups.WriteDesignator(path, b.Slice(at));
        return at;
    }

    private static void BlockLimitsPage(Volume volume, Span<byte> b)
    {
        // SBC-3 6.6.3.
        b[4] = 0x01; // WSNZ: WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 is refused, not "to the end"
        b[5] = (byte)BlockLimitsOf.MaxCompareAndWriteBlocks(volume);
        Be.U16(b, 6, BlockLimitsOf.OptimalTransferLengthGranularity(volume));
        Be.U32(b, 8, BlockLimitsOf.MaxTransferBlocks(volume));
        Be.U32(b, 12, 0); // OPTIMAL TRANSFER LENGTH: not reported (Linux would turn it into stripe hints)
        if (volume.Store.SupportsUnmap)
        {
            Be.U32(b, 20, BlockLimitsOf.MaxUnmapBlocks(volume));
            Be.U32(b, 24, BlockLimitsOf.MaxUnmapDescriptors);
            Be.U32(b, 28, BlockLimitsOf.UnmapGranularityBlocks(volume));
            Be.U32(b, 32, 0x8000_0000); // UGAVALID, alignment 0
        }
        Be.U64(b, 36, BlockLimitsOf.MaxWriteSameBlocks(volume));
    }

    private static int LogicalBlockProvisioningPage(Volume volume, Span<byte> b)
    {
        // SBC-3 6.6.4. Thin provisioning only where deallocation is real.
        var store = volume.Store;
        if (store.SupportsUnmap)
        {
            byte flags = 0x80 | 0x40 | 0x20; // LBPU, LBPWS, LBPWS10
            if (store.UnmapReadsZeroes) flags |= 0x04; // LBPRZ
            b[5] = flags;
            b[6] = 0x02; // PROVISIONING TYPE: thin
        }
        return 8;
    }
}

/// <summary>The limits advertised in VPD B0h and enforced by the block commands.</summary>
internal static class BlockLimitsOf
{
    /// <summary>MAXIMUM COMPARE AND WRITE LENGTH, in blocks (the field is one byte).</summary>
    public const int MaxCompareAndWriteBlocksCeiling = 255;

    /// <summary>
    /// MAXIMUM COMPARE AND WRITE LENGTH of this volume: what its store compares and writes
    /// atomically by itself when it has that operation (RBD: one 512-byte sector, so 1 block for
    /// 512-byte volumes and 0, no COMPARE AND WRITE, for larger blocks), else the ceiling.
    /// </summary>
    public static int MaxCompareAndWriteBlocks(Volume volume)
    {
        int atomic = volume.Store.AtomicCompareAndWriteBytes;
        return atomic > 0 ? Math.Min(atomic / volume.BlockSize, MaxCompareAndWriteBlocksCeiling) : MaxCompareAndWriteBlocksCeiling;
    }

    /// <summary>MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT.</summary>
    public const uint MaxUnmapDescriptors = 256;

    /// <summary>One UNMAP descriptor covers at most 1 GiB, so that one command finishes well inside
    /// the initiator's timeout even on a slow discard.</summary>
    private const long MaxUnmapBytes = 1L << 30;

    /// <summary>A finite MAXIMUM UNMAP LBA COUNT above 2^20 is refused as insane by libiscsi's
    /// Inquiry.BlockLimits (2^21 blocks of 512 bytes would be 1 GiB).</summary>
    private const uint MaxUnmapBlocksCeiling = 1u << 20;

    /// <summary>MAXIMUM WRITE SAME LENGTH: LIO's own default (max_write_same_len = 0xFFFF). A
    /// larger value makes initiators pair a WRITE SAME of 65536 blocks with a plain write of the
    /// same length to check it (libiscsi WriteSame16.Unmap), beyond MAXIMUM TRANSFER LENGTH.</summary>
    private const ulong MaxWriteSameBlocksCeiling = 0xFFFF;

    public static uint MaxTransferBlocks(Volume v) => (uint)Math.Max(1, v.MaxTransferBytes / v.BlockSize);

    /// <summary>MAXIMUM UNMAP LBA COUNT: 1 GiB, or less where the device's queue takes less in one
    /// discard (discard_max_bytes), at least one unmap granule.</summary>
    public static uint MaxUnmapBlocks(Volume v)
    {
        long bytes = v.Store.MaxUnmapBytes is > 0 and var device ? Math.Min(device, MaxUnmapBytes) : MaxUnmapBytes;
        return (uint)Math.Clamp(bytes / v.BlockSize, Math.Min(UnmapGranularityBlocks(v), MaxUnmapBlocksCeiling), MaxUnmapBlocksCeiling);
    }

    public static ulong MaxWriteSameBlocks(Volume v) => Math.Min((ulong)(MaxUnmapBytes / v.BlockSize), MaxWriteSameBlocksCeiling);

    public static uint UnmapGranularityBlocks(Volume v) => (uint)Math.Max(1, v.Store.UnmapGranularity / v.BlockSize);

    /// <summary>log2(physical block / logical block), 0 when the store's physical block is not
    /// larger than the volume's block or is not a power-of-two multiple of it (SBC-3 READ
    /// CAPACITY(16) parameter data: the field is 4 bits).</summary>
    public static int LogicalBlocksPerPhysicalBlockExponent(Volume v)
    {
        int physical = v.Store.PhysicalBlockSize;
        if (physical <= v.BlockSize || physical % v.BlockSize != 0) return 0;
        int ratio = physical / v.BlockSize;
        return int.IsPow2(ratio) ? Math.Min(int.Log2(ratio), 15) : 0;
    }

    public static int OptimalTransferLengthGranularity(Volume v) => (int)Math.Min(0xFFFF, UnmapGranularityBlocks(v));
}
