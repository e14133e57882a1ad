using System.Buffers;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Scsi.PrimaryCommands;

namespace TcmuSharedVolume.Scsi;

/// <summary>
/// SBC-3 block commands (the target_core_sbc.c of this project), reached through <see cref="CommandTable"/>.
/// READ/WRITE move data straight between the command's buffer (the TCMU data area) and the
/// store with one preadv/pwritev per 64 segments: no copy, no allocation. Ordinary writes,
/// UNMAP and WRITE SAME hold <see cref="Volume.WriteOrdering"/> for reading; COMPARE AND WRITE
/// holds it for writing, so it is atomic against every other write of the volume on every path.
/// </summary>
/// <remarks>
/// Transfer length and the fabric's buffer: when the buffer is shorter than the CDB asks, a
/// read fills the buffer and reports how much it produced (the residual is the fabric's to
/// report). Every command with Data-Out (WRITE, WRITE AND VERIFY, VERIFY with BYTCHK and
/// COMPARE AND WRITE) needs all of it and fails with INVALID FIELD IN CDB when the buffer is
/// short, before touching the medium: writing only the blocks that arrived would be a torn
/// write reported as GOOD, and a partial compare could not tell the truth. (LIO refuses such an
/// underflow itself before the command reaches the ring; this is the check of last resort.)
/// </remarks>
public static class BlockCommands
{
    /// <summary>SBC-3 4.7.3.6: a thin store that ran out of space.</summary>
    internal static readonly SenseCode SpaceAllocationFailedWriteProtect = new(SenseKey.DataProtect, 0x27, 0x07);

    private const int ScratchSegments = 64;
    private const int CompareChunkBytes = 256 << 10;
    private const int ENOSPC = 28;
    private const int ESHUTDOWN = 108;
    private const int ETIMEDOUT = 110;

    // ---- the handlers of CommandTable's rows: the CDB is checked for length and NACA ----

    // SBC-3 5.14: 21-bit LBA; TRANSFER LENGTH 0 means 256 blocks.
    internal static void Read6(VolumePath p, ScsiCommand c, CdbReader cdb) =>
        Read(p.Volume, c, cdb.U24(1) & 0x1F_FFFF, cdb[4] == 0 ? 256u : cdb[4], 0, 4);
    internal static void Read10(VolumePath p, ScsiCommand c, CdbReader cdb) => Read(p.Volume, c, cdb.U32(2), cdb.U16(7), cdb[1], 7);
    internal static void Read12(VolumePath p, ScsiCommand c, CdbReader cdb) => Read(p.Volume, c, cdb.U32(2), cdb.U32(6), cdb[1], 6);
    internal static void Read16(VolumePath p, ScsiCommand c, CdbReader cdb) => Read(p.Volume, c, cdb.U64(2), cdb.U32(10), cdb[1], 10);
    internal static void Write6(VolumePath p, ScsiCommand c, CdbReader cdb) =>
        Write(p.Volume, c, cdb.U24(1) & 0x1F_FFFF, cdb[4] == 0 ? 256u : cdb[4], 0, 4);
    internal static void Write10(VolumePath p, ScsiCommand c, CdbReader cdb) => Write(p.Volume, c, cdb.U32(2), cdb.U16(7), cdb[1], 7);
    internal static void Write12(VolumePath p, ScsiCommand c, CdbReader cdb) => Write(p.Volume, c, cdb.U32(2), cdb.U32(6), cdb[1], 6);
    internal static void Write16(VolumePath p, ScsiCommand c, CdbReader cdb) => Write(p.Volume, c, cdb.U64(2), cdb.U32(10), cdb[1], 10);
    internal static void Verify10(VolumePath p, ScsiCommand c, CdbReader cdb) => Verify(p.Volume, c, cdb.U32(2), cdb.U16(7), cdb[1], 7);
    internal static void Verify12(VolumePath p, ScsiCommand c, CdbReader cdb) => Verify(p.Volume, c, cdb.U32(2), cdb.U32(6), cdb[1], 6);
    internal static void Verify16(VolumePath p, ScsiCommand c, CdbReader cdb) => Verify(p.Volume, c, cdb.U64(2), cdb.U32(10), cdb[1], 10);
    internal static void WriteAndVerify10(VolumePath p, ScsiCommand c, CdbReader cdb) =>
        WriteAndVerify(p.Volume, c, cdb.U32(2), cdb.U16(7), cdb[1], 7);
    internal static void WriteAndVerify12(VolumePath p, ScsiCommand c, CdbReader cdb) =>
        WriteAndVerify(p.Volume, c, cdb.U32(2), cdb.U32(6), cdb[1], 6);
    internal static void WriteAndVerify16(VolumePath p, ScsiCommand c, CdbReader cdb) =>
        WriteAndVerify(p.Volume, c, cdb.U64(2), cdb.U32(10), cdb[1], 10);
    internal static void SynchronizeCache10(VolumePath p, ScsiCommand c, CdbReader cdb) => SynchronizeCache(p.Volume, c, cdb.U32(2), cdb.U16(7));
    internal static void SynchronizeCache16(VolumePath p, ScsiCommand c, CdbReader cdb) => SynchronizeCache(p.Volume, c, cdb.U64(2), cdb.U32(10));
    internal static void WriteSame10(VolumePath p, ScsiCommand c, CdbReader cdb) =>
        WriteSame(p.Volume, c, cdb.U32(2), cdb.U16(7), cdb[1], ndobAllowed: false, 7);
    internal static void WriteSame16(VolumePath p, ScsiCommand c, CdbReader cdb) =>
        WriteSame(p.Volume, c, cdb.U64(2), cdb.U32(10), cdb[1], ndobAllowed: true, 10);
    internal static void Unmap(VolumePath p, ScsiCommand c, CdbReader cdb) => Unmap(p.Volume, c, cdb);
    internal static void CompareAndWrite(VolumePath p, ScsiCommand c, CdbReader cdb) => CompareAndWrite(p.Volume, c, cdb);
    internal static void ReadCapacity10(VolumePath p, ScsiCommand c, CdbReader cdb) => ReadCapacity10(p.Volume, c);
    internal static void ReadCapacity16(VolumePath p, ScsiCommand c, CdbReader cdb) => ReadCapacity16(p.Volume, c, cdb);
    internal static void GetLbaStatus(VolumePath p, ScsiCommand c, CdbReader cdb) => GetLbaStatus(p.Volume, c, cdb);

    // ---- checks ----

    /// <summary>SBC-3 4.5: LBA + blocks must not pass the end (and must not wrap).</summary>
    private static bool InRange(Volume v, ScsiCommand command, ulong lba, ulong blocks)
    {
        ulong count = (ulong)v.BlockCount;
        if (lba > count || blocks > count - lba)
        {
            command.CheckCondition(SenseCode.LbaOutOfRange);
            return false;
        }
        return true;
    }

    /// <summary>RDPROTECT/WRPROTECT/VRPROTECT (bits 7-5 of byte 1) must be 0: no protection information.</summary>
    private static bool NoProtection(ScsiCommand command, byte flags)
    {
        if ((flags & 0xE0) == 0) return true;
        Invalid(command, 1, 7);
        return false;
    }

    private static bool WithinTransferLimit(Volume v, ScsiCommand command, ulong blocks, int lengthField)
    {
        if (blocks <= BlockLimitsOf.MaxTransferBlocks(v)) return true;
        Invalid(command, lengthField);
        return false;
    }

    /// <summary>Data-Out must hold every block the CDB names (see the class remarks); the
    /// transfer's length in bytes is <paramref name="bytes"/>.</summary>
    private static bool HasAllDataOut(Volume v, ScsiCommand command, ulong blocks, int lengthField, out long bytes)
    {
        bytes = (long)blocks * v.BlockSize;
        if (command.Data.Length >= bytes) return true;
        Invalid(command, lengthField);
        return false;
    }

    internal static void Failed(Volume v, ScsiCommand command, BackingStoreException e, bool write)
    {
        Log.Error($"volume {v.Identity.UnitSerial}: {(write ? "write" : "read")} failed: {e.Message}");
        StoreFailed(command, e.Errno, write);
    }

    /// <summary>The status for a backing store's errno.</summary>
    internal static void StoreFailed(ScsiCommand command, int errno, bool write)
    {
        if (write && errno == ENOSPC) command.CheckCondition(SpaceAllocationFailedWriteProtect);
        // The Ceph cluster fenced this host (blocklisted its client): the medium is fine but this
        // path cannot reach it. NOT READY makes the initiator's multipath use another path.
        else if (errno == ESHUTDOWN) command.CheckCondition(SenseCode.LogicalUnitNotReadyCauseNotReportable);
        // The store did not answer in time; the same command may succeed later (SAM-5 BUSY).
        else if (errno == ETIMEDOUT) command.Complete(ScsiStatus.Busy);
        else command.CheckCondition(write ? SenseCode.WriteError : SenseCode.UnrecoveredReadError);
    }

    private delegate void MediumChange<TState>(IBackingStore store, ScsiCommand command, scoped ref TState state)
        where TState : allows ref struct;

    /// <summary>
    /// Runs a change of the medium (WRITE, WRITE SAME, UNMAP…) under the volume's write ordering
    /// read lock, which COMPARE AND WRITE takes for writing so that no write lands between its
    /// read and its write (SBC-3 5.2). A failing store gives the command its sense; returns false then.
    /// A <paramref name="writeThrough"/> change promises durability, so it also answers for the
    /// volume's latched write error (<see cref="Volume.LatchedWriteErrno"/>).
    /// </summary>
    private static bool ChangeMedium<TState>(Volume v, ScsiCommand command, bool writeThrough, scoped ref TState state, MediumChange<TState> change)
        where TState : allows ref struct
    {
        var ordering = v.WriteOrdering;
        ordering.EnterReadLock();
        try
        {
            change(v.Store, command, ref state);
        }
        catch (BackingStoreException e)
        {
            WriteFailed(v, command, e, writeThrough);
            return false;
        }
        finally
        {
            ordering.ExitReadLock();
        }
        return DurableUnlessLatched(v, command, writeThrough);
    }

    /// <summary>A failed write; one that was to be durable may have taken other cached data
    /// with it (RWF_DSYNC / fdatasync failing), so it latches the volume's write error.
    /// ENOSPC from a write is refused allocation, before anything was written: not latched.</summary>
    internal static void WriteFailed(Volume v, ScsiCommand command, BackingStoreException e, bool writeThrough)
    {
        if (writeThrough && e.Errno != ENOSPC) v.LatchWriteError(e.Errno);
        Failed(v, command, e, write: true);
    }

    /// <summary>After a successful write-through change: GOOD may only say "durable" if no
    /// earlier flush lost data (the error is latched until cleared).</summary>
    internal static bool DurableUnlessLatched(Volume v, ScsiCommand command, bool writeThrough)
    {
        if (!writeThrough || v.LatchedWriteErrno == 0) return true;
        command.CheckCondition(SenseCode.WriteError);
        return false;
    }

    private record struct DataOut(long Length, long DeviceOffset, bool Fua);

    /// <summary>Data-Out [0, Length) to the medium at DeviceOffset.</summary>
    private static bool WriteDataOut(Volume v, ScsiCommand command, DataOut range) =>
        ChangeMedium(v, command, range.Fua, ref range,
            static (IBackingStore store, ScsiCommand c, scoped ref DataOut r) => WriteFrom(store, c.Data, 0, r.Length, r.DeviceOffset, r.Fua));

    // ---- data movement ----

    /// <summary>Reads [deviceOffset, +length) of the store into the buffer at bufferOffset.</summary>
    private static void ReadInto(IBackingStore store, DataBuffer data, long bufferOffset, long length, long deviceOffset)
    {
        Span<IoVec> scratch = stackalloc IoVec[ScratchSegments];
        long done = 0;
        while (done < length)
        {
            var iov = data.GetRange(bufferOffset + done, length - done, scratch, out long covered);
            if (covered == 0) break;
            store.Read(iov, deviceOffset + done);
            done += covered;
        }
    }

    private static void WriteFrom(IBackingStore store, DataBuffer data, long bufferOffset, long length, long deviceOffset, bool fua)
    {
        Span<IoVec> scratch = stackalloc IoVec[ScratchSegments];
        long done = 0;
        while (done < length)
        {
            var iov = data.GetRange(bufferOffset + done, length - done, scratch, out long covered);
            if (covered == 0) break;
            store.Write(iov, deviceOffset + done, fua);
            done += covered;
        }
    }

    /// <summary>Index of the first byte where the buffer (from bufferOffset) differs from
    /// <paramref name="expected"/>; -1 when equal.</summary>
    internal static unsafe long FirstMismatch(DataBuffer data, long bufferOffset, ReadOnlySpan<byte> expected)
    {
        Span<IoVec> scratch = stackalloc IoVec[ScratchSegments];
        long done = 0;
        while (done < expected.Length)
        {
            var iov = data.GetRange(bufferOffset + done, expected.Length - done, scratch, out long covered);
            if (covered == 0) return done; // buffer shorter than the data to compare
            foreach (ref readonly var seg in iov)
            {
                var actual = new ReadOnlySpan<byte>((void*)seg.Base, (int)seg.Length);
                int same = actual.CommonPrefixLength(expected.Slice((int)done, actual.Length));
                if (same < actual.Length) return done + same;
                done += actual.Length;
            }
        }
        return -1;
    }

    // ---- READ / WRITE (SBC-3 5.11-5.14, 5.32-5.35) ----

    private static void Read(Volume v, ScsiCommand command, ulong lba, ulong blocks, byte flags, int lengthField)
    {
        if (!NoProtection(command, flags) || !InRange(v, command, lba, blocks)
            || !WithinTransferLimit(v, command, blocks, lengthField)) return;
        long bytes = (long)blocks * v.BlockSize;
        long n = Math.Min(bytes, command.Data.Length);
        if (MayFinishLater(v, command, n, write: false, fua: false))
        {
            command.Deferred = new StoreTransfer((long)lba * v.BlockSize, n, Write: false, Fua: false);
            return;
        }
        try
        {
            ReadInto(v.Store, command.Data, 0, n, (long)lba * v.BlockSize);
        }
        catch (BackingStoreException e)
        {
            Failed(v, command, e, write: false);
            return;
        }
        command.Good(n);
    }

    private static void Write(Volume v, ScsiCommand command, ulong lba, ulong blocks, byte flags, int lengthField)
    {
        if (!NoProtection(command, flags) || !InRange(v, command, lba, blocks)
            || !WithinTransferLimit(v, command, blocks, lengthField)) return;
        if (!HasAllDataOut(v, command, blocks, lengthField, out long n)) return;
        // FUA (bit 3): this write through; WCE=0: every write through (SBC-3 4.15).
        bool fua = (flags & 0x08) != 0 || !v.WriteCacheEnabled;
        int bs = v.BlockSize;
        if (MayFinishLater(v, command, n, write: true, fua))
        {
            command.Deferred = new StoreTransfer((long)lba * bs, n, Write: true, fua);
            return;
        }
        if (WriteDataOut(v, command, new DataOut(n, (long)lba * bs, fua))) command.Good();
    }

    /// <summary>
    /// Whether this READ or WRITE is left for <see cref="CommandSet"/> to start on a store that
    /// completes it on its own thread (<see cref="AsyncTransfer"/>): the transport can finish
    /// commands later, the store can take the whole buffer as it is (it must keep the segment
    /// list, so no trimmed copy on the stack), and there is something to move.
    /// </summary>
    private static bool MayFinishLater(Volume v, ScsiCommand command, long length, bool write, bool fua) =>
        command.Completion is not null && length > 0 && length == command.Data.Length
        && v.Store is IAsyncBackingStore store && store.CanStart(write, command.Data.Segments.Length, fua);

    // ---- VERIFY (SBC-3 5.27-5.29) ----

    private static void Verify(Volume v, ScsiCommand command, ulong lba, ulong blocks, byte flags, int lengthField)
    {
        if (!NoProtection(command, flags) || !InRange(v, command, lba, blocks)) return;
        int byteCheck = (flags >> 1) & 0x03;
        switch (byteCheck)
        {
            case 0b00:
                // Medium verification: a file or a logical volume has no media defects for a read
                // to find that the store would not report on the real read; the range is checked.
                command.Good();
                return;
            case 0b10:
                Invalid(command, 1, 2);
                return;
        }
        if (blocks == 0)
        {
            command.Good();
            return;
        }
        if (!WithinTransferLimit(v, command, blocks, lengthField)) return;
        int bs = v.BlockSize;
        // BYTCHK 01b: Data-Out holds every block; 11b: one block, compared with each block.
        long need = byteCheck == 0b01 ? (long)blocks * bs : bs;
        if (command.Data.Length < need)
        {
            Invalid(command, lengthField);
            return;
        }
        CompareWithMedium(v, command, (long)lba * bs, (long)blocks * bs, repeatFirstBlock: byteCheck == 0b11);
    }

    /// <summary>Reads the range and compares it with Data-Out; GOOD or MISCOMPARE with the
    /// offset of the first differing byte in INFORMATION.</summary>
    private static void CompareWithMedium(Volume v, ScsiCommand command, long deviceOffset, long length, bool repeatFirstBlock)
    {
        int bs = v.BlockSize;
        byte[] chunk = ArrayPool<byte>.Shared.Rent(CompareChunkBytes);
        try
        {
            for (long done = 0; done < length;)
            {
                int n = (int)Math.Min(length - done, CompareChunkBytes / bs * bs);
                var medium = chunk.AsSpan(0, n);
                v.Store.Read(medium, deviceOffset + done);
                if (!repeatFirstBlock)
                {
                    long at = FirstMismatch(command.Data, done, medium);
                    if (at >= 0)
                    {
                        command.CheckCondition(SenseCode.MiscompareDuringVerifyOperation, information: (ulong)(done + at));
                        return;
                    }
                }
                else
                {
                    for (int b = 0; b < n; b += bs)
                    {
                        long at = FirstMismatch(command.Data, 0, medium.Slice(b, bs));
                        if (at >= 0)
                        {
                            command.CheckCondition(SenseCode.MiscompareDuringVerifyOperation, information: (ulong)(done + b + at));
                            return;
                        }
                    }
                }
                done += n;
            }
        }
        catch (BackingStoreException e)
        {
            Failed(v, command, e, write: false);
            return;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
        command.Good();
    }

    // ---- WRITE AND VERIFY (SBC-3 5.38-5.40) ----

    private static void WriteAndVerify(Volume v, ScsiCommand command, ulong lba, ulong blocks, byte flags, int lengthField)
    {
        if (!NoProtection(command, flags) || !InRange(v, command, lba, blocks)
            || !WithinTransferLimit(v, command, blocks, lengthField)) return;
        if (!HasAllDataOut(v, command, blocks, lengthField, out long n)) return;
        int bs = v.BlockSize;
        // Verification is against the medium, so the data is written through.
        if (!WriteDataOut(v, command, new DataOut(n, (long)lba * bs, Fua: true))) return;
        if ((flags & 0x02) != 0) // BYTCHK: read back and compare
            CompareWithMedium(v, command, (long)lba * bs, n, repeatFirstBlock: false);
        else
            command.Good();
    }

    // ---- SYNCHRONIZE CACHE (SBC-3 5.22, 5.23) ----

    private static void SynchronizeCache(Volume v, ScsiCommand command, ulong lba, ulong blocks)
    {
        // NUMBER OF LOGICAL BLOCKS 0 means "to the end"; IMMED is ignored: GOOD only once durable.
        if (!InRange(v, command, lba, blocks)) return;
        if (Flush(v, command)) command.Good();
    }

    // ---- WRITE SAME (SBC-3 5.41, 5.42) ----

    private static void WriteSame(Volume v, ScsiCommand command, ulong lba, ulong blocks, byte flags, bool ndobAllowed, int lengthField)
    {
        if (!NoProtection(command, flags)) return;
        if ((flags & 0x10) != 0)
        {
            Invalid(command, 1, 4); // ANCHOR: anchored LBAs are not supported (ANC_SUP=0)
            return;
        }
        if ((flags & 0x06) != 0)
        {
            Invalid(command, 1, 2); // PBDATA / LBDATA: no generated data
            return;
        }
        bool unmap = (flags & 0x08) != 0;
        bool ndob = ndobAllowed && (flags & 0x01) != 0;
        // WSNZ=1 in VPD B0h: 0 blocks is refused rather than meaning "to the end of the medium".
        if (blocks == 0 || blocks > BlockLimitsOf.MaxWriteSameBlocks(v))
        {
            Invalid(command, lengthField);
            return;
        }
        if (!InRange(v, command, lba, blocks)) return;
        int bs = v.BlockSize;
        Span<byte> pattern = stackalloc byte[bs];
        if (ndob)
        {
            pattern.Clear();
        }
        else if (command.Data.Length != bs || command.Data.CopyTo(0, pattern) < bs)
        {
            // SBC-3 WRITE SAME: the Data-Out is exactly one logical block; more or less is a
            // malformed command, not a pattern to guess at.
            command.CheckCondition(SenseCode.InvalidFieldInCdb);
            return;
        }

        var same = new WriteSameArgs(pattern, (long)lba * bs, (long)blocks * bs, unmap, writeThrough: !v.WriteCacheEnabled);
        if (ChangeMedium(v, command, same.WriteThrough, ref same, static (IBackingStore store, ScsiCommand _, scoped ref WriteSameArgs a) =>
            {
                if (!a.Pattern.ContainsAnyExcept((byte)0))
                {
                    // UNMAP=1 with zeroes: deallocate where that reads back as the zeroes written.
                    if (a.Unmap && store.SupportsUnmap && store.UnmapReadsZeroes) store.Unmap(a.Offset, a.Length);
                    else store.WriteZeroes(a.Offset, a.Length);
                    if (a.WriteThrough) store.Flush();
                }
                else
                {
                    WritePattern(store, a.Pattern, a.Offset, a.Length, a.WriteThrough);
                }
            }))
            command.Good();
    }

    private readonly ref struct WriteSameArgs(ReadOnlySpan<byte> pattern, long offset, long length, bool unmap, bool writeThrough)
    {
        public readonly ReadOnlySpan<byte> Pattern = pattern;
        public readonly long Offset = offset, Length = length;
        public readonly bool Unmap = unmap, WriteThrough = writeThrough;
    }

    private static void WritePattern(IBackingStore store, ReadOnlySpan<byte> pattern, long offset, long length, bool fua)
    {
        int chunkBytes = (int)Math.Min(length, (1 << 20) / pattern.Length * pattern.Length);
        byte[] chunk = ArrayPool<byte>.Shared.Rent(chunkBytes);
        try
        {
            for (int i = 0; i < chunkBytes; i += pattern.Length) pattern.CopyTo(chunk.AsSpan(i));
            for (long done = 0; done < length;)
            {
                int n = (int)Math.Min(length - done, chunkBytes);
                store.Write(chunk.AsSpan(0, n), offset + done, fua);
                done += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    // ---- UNMAP (SBC-3 5.26) ----

    private static void Unmap(Volume v, ScsiCommand command, CdbReader cdb)
    {
        var store = v.Store;
        if (!store.SupportsUnmap)
        {
            // LBPU=0 in VPD B2h: this store cannot deallocate, so the command does not exist here.
            command.CheckCondition(SenseCode.InvalidCommandOperationCode, FieldPointer.Cdb(0));
            return;
        }
        if (cdb.Bit(1, 0))
        {
            Invalid(command, 1, 0); // ANCHOR
            return;
        }
        int length = cdb.U16(7);
        if (length == 0)
        {
            command.Good();
            return;
        }
        if (length < 8 || command.Data.Length < 8)
        {
            command.CheckCondition(SenseCode.ParameterListLengthError);
            return;
        }
        // The header, then descriptors read one at a time from the buffer: no allocation.
        Span<byte> header = stackalloc byte[8];
        command.Data.CopyTo(0, header);
        var h = new CdbReader(header);
        int available = (int)Math.Min(length, command.Data.Length);
        // Truncated descriptors are ignored (SBC-3 5.26.2), so take whole ones that arrived.
        int descriptorBytes = Math.Min(h.U16(2), available - 8);
        int count = descriptorBytes / 16;
        if (count > BlockLimitsOf.MaxUnmapDescriptors)
        {
            InvalidParameter(command, 2);
            return;
        }

        int bs = v.BlockSize;
        uint maxBlocks = BlockLimitsOf.MaxUnmapBlocks(v);
        Span<byte> d = stackalloc byte[16];
        // Check every descriptor before touching anything, so an error changes nothing.
        // SBC-3 UNMAP: the sum of the NUMBER OF LOGICAL BLOCKS fields of all descriptors, not
        // each one alone, must not exceed MAXIMUM UNMAP LBA COUNT; the field pointer names the
        // descriptor that goes past it.
        ulong total = 0;
        for (int i = 0; i < count; i++)
        {
            command.Data.CopyTo(8 + i * 16, d);
            var r = new CdbReader(d);
            ulong lba = r.U64(0);
            uint blocks = r.U32(8);
            total += blocks; // at most 256 descriptors of 2^32 - 1 blocks: cannot wrap
            if (total > maxBlocks)
            {
                InvalidParameter(command, 8 + i * 16 + 8);
                return;
            }
            if (!InRange(v, command, lba, blocks)) return;
        }
        var descriptors = (Count: count, BlockSize: bs, WriteThrough: !v.WriteCacheEnabled);
        if (ChangeMedium(v, command, descriptors.WriteThrough, ref descriptors, static (IBackingStore store, ScsiCommand c, scoped ref (int Count, int BlockSize, bool WriteThrough) a) =>
            {
                Span<byte> d = stackalloc byte[16];
                for (int i = 0; i < a.Count; i++)
                {
                    c.Data.CopyTo(8 + i * 16, d);
                    var r = new CdbReader(d);
                    long blocks = r.U32(8);
                    if (blocks != 0) store.Unmap((long)r.U64(0) * a.BlockSize, blocks * a.BlockSize);
                }
                if (a.WriteThrough) store.Flush();
            }))
            command.Good();
    }

    // ---- COMPARE AND WRITE (SBC-3 5.2) ----

    private static void CompareAndWrite(Volume v, ScsiCommand command, CdbReader cdb)
    {
        byte flags = cdb[1];
        if (!NoProtection(command, flags)) return;
        ulong lba = cdb.U64(2);
        int blocks = cdb[13];
        int max = BlockLimitsOf.MaxCompareAndWriteBlocks(v);
        if (max == 0)
        {
            // The store cannot compare and write one block of this size atomically (RBD with
            // blocks above 512 bytes): no COMPARE AND WRITE rather than a non-atomic one.
            command.CheckCondition(SenseCode.InvalidCommandOperationCode, FieldPointer.Cdb(0));
            return;
        }
        if (blocks > max)
        {
            Invalid(command, 13);
            return;
        }
        if (!InRange(v, command, lba, (ulong)blocks)) return;
        int bs = v.BlockSize;
        int length = blocks * bs;
        // Data-Out: the verify instance, then the write instance, and nothing else. LIO passes
        // the CDB to TCMU without matching it against the transfer length, so a Data-Out that
        // disagrees with NUMBER OF LOGICAL BLOCKS is refused here: above all 256 blocks, which
        // the one-byte field carries as 0 and which must not pass as "nothing to do" (libiscsi
        // CompareAndWrite.Simple; tcmu-runner checks the iovec length the same way).
        if (command.Data.Length != 2L * length)
        {
            Invalid(command, 13);
            return;
        }
        if (blocks == 0)
        {
            command.Good(); // nothing compared, nothing written: not an error (SBC-3 5.2)
            return;
        }
        long offset = (long)lba * bs;
        bool fua = (flags & 0x08) != 0 || !v.WriteCacheEnabled;
        if (v.Store.AtomicCompareAndWriteBytes > 0)
        {
            CompareAndWriteInStore(v, command, offset, length, fua);
            return;
        }
        byte[] medium = ArrayPool<byte>.Shared.Rent(length);
        v.EnterCompareAndWrite();
        try
        {
            var current = medium.AsSpan(0, length);
            try
            {
                v.Store.Read(current, offset);
            }
            catch (BackingStoreException e)
            {
                Failed(v, command, e, write: false);
                return;
            }
            long at = FirstMismatch(command.Data, 0, current);
            if (at >= 0)
            {
                command.CheckCondition(SenseCode.MiscompareDuringVerifyOperation, information: (ulong)at);
                return;
            }
            try
            {
                WriteFrom(v.Store, command.Data, length, length, offset, fua);
            }
            catch (BackingStoreException e)
            {
                WriteFailed(v, command, e, fua);
                return;
            }
        }
        finally
        {
            v.ExitCompareAndWrite();
            ArrayPool<byte>.Shared.Return(medium);
        }
        if (DurableUnlessLatched(v, command, fua)) command.Good();
    }

    /// <summary>
    /// COMPARE AND WRITE done by the store (RBD: in the OSD), atomic against the other hosts'
    /// writes too. The write lock is still taken: this host's own writes are ordered as for files.
    /// </summary>
    private static void CompareAndWriteInStore(Volume v, ScsiCommand command, long offset, int length, bool fua)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(2 * length);
        v.EnterCompareAndWrite();
        try
        {
            var both = buffer.AsSpan(0, 2 * length);
            command.Data.CopyTo(0, both);
            long at;
            try
            {
                at = v.Store.CompareAndWrite(both[..length], both[length..], offset, fua);
            }
            catch (BackingStoreException e)
            {
                WriteFailed(v, command, e, fua);
                return;
            }
            if (at >= 0)
            {
                command.CheckCondition(SenseCode.MiscompareDuringVerifyOperation, information: (ulong)at);
                return;
            }
        }
        finally
        {
            v.ExitCompareAndWrite();
            ArrayPool<byte>.Shared.Return(buffer);
        }
        if (DurableUnlessLatched(v, command, fua)) command.Good();
    }

    // ---- READ CAPACITY (SBC-3 5.15, 5.16) ----

    private static void ReadCapacity10(Volume v, ScsiCommand command)
    {
        Span<byte> b = stackalloc byte[8];
        long last = v.BlockCount - 1;
        // More than 2^32 blocks: FFFFFFFFh tells the initiator to use READ CAPACITY(16).
        Be.U32(b, 0, last > uint.MaxValue ? uint.MaxValue : (uint)Math.Max(last, 0));
        Be.U32(b, 4, (uint)v.BlockSize);
        DataIn(command, b, 8);
    }

    private static void ReadCapacity16(Volume v, ScsiCommand command, CdbReader cdb)
    {
        Span<byte> b = stackalloc byte[32];
        b.Clear();
        Be.U64(b, 0, (ulong)Math.Max(v.BlockCount - 1, 0));
        Be.U32(b, 8, (uint)v.BlockSize);
        // Byte 13 bits 3-0: LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT. Bytes 14-15: LOWEST
        // ALIGNED LOGICAL BLOCK ADDRESS 0, since the volume starts at offset 0 of the file or
        // device, which is physically aligned. Byte 14 bits 7-6: LBPME, LBPRZ.
        // Files claim no physical block (SparseFileStore.PhysicalBlockSize); block devices report
        // theirs (BLKPBSZGET).
        b[13] = (byte)BlockLimitsOf.LogicalBlocksPerPhysicalBlockExponent(v);
        if (v.Store.SupportsUnmap)
        {
            b[14] = 0x80;
            if (v.Store.UnmapReadsZeroes) b[14] |= 0x40;
        }
        DataIn(command, b, cdb.U32(10));
    }

    // ---- GET LBA STATUS (SBC-3 5.7) ----

    private static void GetLbaStatus(Volume v, ScsiCommand command, CdbReader cdb)
    {
        ulong start = cdb.U64(2);
        uint allocation = cdb.U32(10);
        long count = v.BlockCount;
        if (start >= (ulong)count)
        {
            command.CheckCondition(SenseCode.LbaOutOfRange);
            return;
        }
        const int MaxDescriptors = 64;
        int room = (int)Math.Min(MaxDescriptors, Math.Max(0, ((long)Math.Min(allocation, 8 + 16 * MaxDescriptors) - 8) / 16));
        room = Math.Max(room, 1); // compute at least one, even if only the header fits
        Span<byte> b = stackalloc byte[8 + 16 * MaxDescriptors];
        b.Clear();
        int written = 0;
        int bs = v.BlockSize;
        long size = count * bs;

        // Walk the store's runs, in whole blocks: a block that is partly data is mapped.
        long pendingLba = (long)start, pendingBlocks = 0;
        int pendingState = -1;
        long pos = (long)start * bs;
        try
        {
            while (pos < size && written < room)
            {
                var state = v.Store.GetAllocation(pos, out long run);
                long end = Math.Min(pos + Math.Max(run, 1), size);
                long firstBlock = pos / bs;
                long endBlock;
                int s;
                if (state == AllocationState.Deallocated && end / bs > firstBlock)
                {
                    endBlock = end / bs;  // only whole deallocated blocks
                    s = 1;
                }
                else
                {
                    endBlock = (end + bs - 1) / bs;
                    s = 0;
                }
                if (s == pendingState && pendingBlocks + (endBlock - firstBlock) <= uint.MaxValue)
                {
                    pendingBlocks += endBlock - firstBlock;
                }
                else
                {
                    if (pendingState >= 0) Descriptor(b, ref written, pendingLba, pendingBlocks, pendingState);
                    pendingLba = firstBlock;
                    pendingBlocks = endBlock - firstBlock;
                    pendingState = s;
                }
                pos = endBlock * bs;
            }
        }
        catch (BackingStoreException e)
        {
            Failed(v, command, e, write: false);
            return;
        }
        if (pendingState >= 0 && written < room) Descriptor(b, ref written, pendingLba, pendingBlocks, pendingState);

        int n = 8 + written * 16;
        Be.U32(b, 0, (uint)(n - 4)); // PARAMETER DATA LENGTH
        DataIn(command, b.Slice(0, n), allocation);
    }

    private static void Descriptor(Span<byte> b, ref int written, long lba, long blocks, int state)
    {
        int at = 8 + written * 16;
        Be.U64(b, at, (ulong)lba);
        Be.U32(b, at + 8, (uint)blocks);
        b[at + 12] = (byte)state; // PROVISIONING STATUS: 0 mapped, 1 deallocated
        written++;
    }
}
