using System.Buffers.Binary;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Tests.Scsi.ScsiFixture;

namespace TcmuSharedVolume.Tests.Scsi;

public sealed class BlockCommandsTests : IDisposable
{
    private readonly ScsiFixture _f = new();
    private readonly Volume _volume;
    private FaultStore _store = null!;
    private readonly VolumePath _a, _b;
    private const int Bs = BlockSize;
    private static readonly SenseCode SpaceAllocationFailed = new(SenseKey.DataProtect, 0x27, 0x07);

    public BlockCommandsTests()
    {
        _volume = _f.CreateVolume(4 << 20, wrap: s => _store = new FaultStore(s));
        _a = _volume.AddPath("vol-a", Nexus("iqn.2024-01.test:a", 1));
        _b = _volume.AddPath("vol-b", Nexus("iqn.2024-01.test:b", 2));
    }

    public void Dispose() => _f.Dispose();

    private static byte[] Pattern(int length, int seed)
    {
        var a = new byte[length];
        new Random(seed).NextBytes(a);
        return a;
    }

    private byte[] ReadBlocks(VolumePath p, uint lba, int blocks)
    {
        var r = In(p, Cdb.Read10(lba, (ushort)blocks), blocks * Bs, segments: 5);
        r.AssertGood();
        return r.DataIn;
    }

    private void WriteBlocks(VolumePath p, uint lba, byte[] data, byte flags = 0) =>
        Out(p, Cdb.Write10(lba, (ushort)(data.Length / Bs), flags), data, segments: 4).AssertGood();

    // ---- READ / WRITE ----

    [Fact]
    public void WrittenDataReadsBackOnTheOtherPathAcrossScatteredSegments()
    {
        var data = Pattern(7 * Bs, 1);
        WriteBlocks(_a, 100, data);
        Assert.Equal(data, ReadBlocks(_b, 100, 7));
    }

    [Fact]
    public void AllCdbSizesAddressTheSameBlocks()
    {
        var data = Pattern(2 * Bs, 2);
        Out(_a, Cdb.Rw16(OperationCode.Write16, 50, 2), data).AssertGood();
        Assert.Equal(data, In(_a, Cdb.Rw12(OperationCode.Read12, 50, 2), 2 * Bs).DataIn);
        Assert.Equal(data, In(_a, [OperationCode.Read6, 0, 0, 50, 2, 0], 2 * Bs).DataIn);
        var other = Pattern(Bs, 3);
        Out(_a, Cdb.Rw12(OperationCode.Write12, 51, 1), other).AssertGood();
        Assert.Equal(other, In(_a, Cdb.Rw16(OperationCode.Read16, 51, 1), Bs).DataIn);
        var six = Pattern(Bs, 4);
        Out(_a, [OperationCode.Write6, 0x00, 0x01, 0x00, 1, 0], six).AssertGood(); // LBA 256
        Assert.Equal(six, ReadBlocks(_a, 256, 1));
    }

    [Fact]
    public void Read6WithTransferLengthZeroReads256Blocks()
    {
        var data = Pattern(256 * Bs, 5);
        WriteBlocks(_a, 0, data);
        var r = In(_a, [OperationCode.Read6, 0, 0, 0, 0, 0], 256 * Bs);
        r.AssertGood();
        Assert.Equal(data, r.DataIn);
    }

    [Fact]
    public void LastBlockIsReachableAndOneMoreIsOutOfRange()
    {
        uint last = (uint)(_volume.BlockCount - 1);
        WriteBlocks(_a, last, Pattern(Bs, 6));
        In(_a, Cdb.Read10(last, 2), 2 * Bs).AssertCheck(SenseCode.LbaOutOfRange);
        Out(_a, Cdb.Write10(last + 1, 1), new byte[Bs]).AssertCheck(SenseCode.LbaOutOfRange);
        In(_a, Cdb.Rw16(OperationCode.Read16, ulong.MaxValue, 2), 2 * Bs).AssertCheck(SenseCode.LbaOutOfRange);
        In(_a, Cdb.Rw16(OperationCode.Read16, 1, uint.MaxValue), Bs).AssertCheck(SenseCode.LbaOutOfRange);
        Run(_a, Cdb.Read10(last + 1, 0)).AssertGood(); // zero blocks at the end: nothing to do
    }

    [Fact]
    public void ShortBufferReadsOnlyWhatFitsAndReportsIt()
    {
        var data = Pattern(4 * Bs, 7);
        WriteBlocks(_a, 10, data);
        var r = In(_a, Cdb.Read10(10, 4), 3 * Bs - 100);
        r.AssertGood();
        Assert.Equal(3 * Bs - 100, r.DataInLength);
        Assert.Equal(data.AsSpan(0, 3 * Bs - 100).ToArray(), r.DataIn);
    }

    [Theory]
    [InlineData(OperationCode.Write10)]
    [InlineData(OperationCode.WriteAndVerify10)]
    public void ShortDataOutIsRefusedAndWritesNothing(byte op)
    {
        // A Data-Out shorter than the CDB's transfer length: writing the blocks that arrived
        // and answering GOOD would be a torn write the initiator never hears of.
        var before = Pattern(4 * Bs, 8);
        WriteBlocks(_a, 20, before);
        var r = Out(_a, Cdb.Rw10(op, 20, 4), Pattern(2 * Bs + 10, 9));
        r.AssertCheck(SenseCode.InvalidFieldInCdb);
        Assert.Equal((true, 7, -1), r.FieldPointer);
        Assert.Equal(before, ReadBlocks(_a, 20, 4));
    }

    [Fact]
    public void LongerBufferThanTheCdbIsNotTouchedBeyondTheTransfer()
    {
        var before = Pattern(2 * Bs, 10);
        WriteBlocks(_a, 30, before);
        Out(_a, Cdb.Write10(30, 1), Pattern(3 * Bs, 11)).AssertGood();
        Assert.Equal(before.AsSpan(Bs).ToArray(), ReadBlocks(_a, 31, 1));
        var r = In(_a, Cdb.Read10(30, 1), 3 * Bs);
        Assert.Equal(Bs, r.DataInLength);
    }

    [Fact]
    public void FuaAndWriteCacheDecideWriteThrough()
    {
        WriteBlocks(_a, 0, new byte[Bs]);
        Assert.Equal((0, 1), (_store.FuaWrites, _store.PlainWrites));
        WriteBlocks(_a, 0, new byte[Bs], flags: 0x08);
        Assert.Equal(1, _store.FuaWrites);
        WriteBlocks(_a, 0, new byte[Bs], flags: 0x10); // DPO: ignored
        Assert.Equal((1, 2), (_store.FuaWrites, _store.PlainWrites));
        _volume.WriteCacheEnabled = false;
        WriteBlocks(_a, 0, new byte[Bs]);
        Assert.Equal((2, 2), (_store.FuaWrites, _store.PlainWrites));
    }

    [Fact]
    public void ProtectionFieldsAreRefused()
    {
        var r = In(_a, Cdb.Read10(0, 1, flags: 0x20), Bs);
        r.AssertCheck(SenseCode.InvalidFieldInCdb);
        Assert.Equal((true, 1, 7), r.FieldPointer);
        Out(_a, Cdb.Write10(0, 1, flags: 0x40), new byte[Bs]).AssertCheck(SenseCode.InvalidFieldInCdb);
    }

    [Fact]
    public void TransferBeyondTheMaximumIsRefused()
    {
        _volume.MaxTransferBytes = 8 * Bs;
        var r = In(_a, Cdb.Read10(0, 9), 9 * Bs);
        r.AssertCheck(SenseCode.InvalidFieldInCdb);
        Assert.Equal((true, 7, -1), r.FieldPointer);
        In(_a, Cdb.Read10(0, 8), 8 * Bs).AssertGood();
    }

    [Fact]
    public void BackendFailuresBecomeMediumErrors()
    {
        _store.ReadErrno = 5;
        In(_a, Cdb.Read10(0, 1), Bs).AssertCheck(SenseCode.UnrecoveredReadError);
        _store.ReadErrno = null;
        _store.WriteErrno = 5;
        Out(_a, Cdb.Write10(0, 1), new byte[Bs]).AssertCheck(SenseCode.WriteError);
        _store.WriteErrno = 28; // ENOSPC on a thin volume
        var r = Out(_a, Cdb.Write10(0, 1), new byte[Bs]);
        r.AssertCheck(new SenseCode(SenseKey.DataProtect, 0x27, 0x07));
        _store.WriteErrno = null;
        _store.FlushErrno = 5;
        Run(_a, Cdb.Rw10(OperationCode.SynchronizeCache10, 0, 0)).AssertCheck(SenseCode.WriteError);
    }

    [Fact]
    public void DescriptorSenseFollowsTheCommand()
    {
        var cdb = Cdb.Read10((uint)_volume.BlockCount, 1);
        using var data = new NativeData(Bs);
        var r = Run(_a, cdb, data, descriptorSense: true);
        Assert.Equal(0x72, r.Sense[0]);
        Assert.Equal(SenseCode.LbaOutOfRange, r.Code);
    }

    // ---- VERIFY / WRITE AND VERIFY ----

    [Fact]
    public void VerifyWithoutByteCheckChecksTheRange()
    {
        Run(_a, Cdb.Rw10(OperationCode.Verify10, 0, 100)).AssertGood();
        Run(_a, Cdb.Rw16(OperationCode.Verify16, (ulong)_volume.BlockCount, 1)).AssertCheck(SenseCode.LbaOutOfRange);
    }

    [Fact]
    public void VerifyByteCheckReportsTheFirstDifferingByte()
    {
        var data = Pattern(3 * Bs, 12);
        WriteBlocks(_a, 40, data);
        Out(_a, Cdb.Rw10(OperationCode.Verify10, 40, 3, flags: 0x02), data).AssertGood();
        var changed = (byte[])data.Clone();
        changed[Bs + 77] ^= 0xFF;
        var r = Out(_a, Cdb.Rw16(OperationCode.Verify16, 40, 3, flags: 0x02), changed);
        r.AssertCheck(SenseCode.MiscompareDuringVerifyOperation);
        Assert.Equal((ulong)(Bs + 77), r.Information);
    }

    [Fact]
    public void VerifyByteCheck11ComparesOneBlockWithEveryBlock()
    {
        var block = Pattern(Bs, 13);
        WriteBlocks(_a, 60, [.. block, .. block, .. block]);
        Out(_a, Cdb.Rw10(OperationCode.Verify10, 60, 3, flags: 0x06), block).AssertGood();
        Out(_a, Cdb.Rw10(OperationCode.Verify10, 60, 4, flags: 0x06), block).AssertCheck(SenseCode.MiscompareDuringVerifyOperation);
        Out(_a, Cdb.Rw10(OperationCode.Verify10, 60, 3, flags: 0x04), block).AssertCheck(SenseCode.InvalidFieldInCdb);
    }

    [Fact]
    public void VerifyWithShortDataOutIsRefused() =>
        Out(_a, Cdb.Rw10(OperationCode.Verify10, 0, 3, flags: 0x02), new byte[2 * Bs]).AssertCheck(SenseCode.InvalidFieldInCdb);

    [Fact]
    public void WriteAndVerifyWritesThroughAndCompares()
    {
        var data = Pattern(2 * Bs, 14);
        Out(_a, Cdb.Rw10(OperationCode.WriteAndVerify10, 70, 2, flags: 0x02), data).AssertGood();
        Assert.Equal(data, ReadBlocks(_b, 70, 2));
        Assert.Equal(1, _store.FuaWrites);
        Out(_a, Cdb.Rw16(OperationCode.WriteAndVerify16, 72, 1), data.AsSpan(0, Bs)).AssertGood();
        Out(_a, Cdb.Rw12(OperationCode.WriteAndVerify12, 73, 1), data.AsSpan(0, Bs)).AssertGood();
        Assert.Equal(data.AsSpan(0, Bs).ToArray(), ReadBlocks(_a, 73, 1));
    }

    // ---- SYNCHRONIZE CACHE ----

    [Fact]
    public void SynchronizeCacheFlushesAndChecksTheRange()
    {
        Run(_a, Cdb.Rw10(OperationCode.SynchronizeCache10, 0, 0)).AssertGood();
        Run(_a, Cdb.Rw16(OperationCode.SynchronizeCache16, 5, 10)).AssertGood();
        Assert.Equal(2, _store.Flushes);
        Run(_a, Cdb.Rw16(OperationCode.SynchronizeCache16, (ulong)_volume.BlockCount, 1)).AssertCheck(SenseCode.LbaOutOfRange);
        Assert.Equal(2, _store.Flushes);
    }

    // ---- the write error latch ----

    private static byte[] SyncCache => Cdb.Rw10(OperationCode.SynchronizeCache10, 0, 0);

    [Fact]
    public void AFailedFlushKeepsFailingEveryLaterFlushAndFuaWriteUntilCleared()
    {
        WriteBlocks(_a, 0, Pattern(Bs, 40)); // cached (WCE=1): GOOD, durable only after a flush
        _store.FlushErrno = 5;
        Run(_a, SyncCache).AssertCheck(SenseCode.WriteError);
        // The kernel's next fdatasync succeeds: it marked the pages it could not write clean.
        _store.FlushErrno = null;
        Run(_a, SyncCache).AssertCheck(SenseCode.WriteError);
        Run(_b, SyncCache).AssertCheck(SenseCode.WriteError); // on every path, not just once
        Out(_b, Cdb.Write10(1, 1, flags: 0x08), new byte[Bs]).AssertCheck(SenseCode.WriteError); // FUA
        Out(_a, Cdb.CompareAndWrite(2, 1, flags: 0x08), new byte[2 * Bs]).AssertCheck(SenseCode.WriteError);
        _volume.WriteCacheEnabled = false; // every write is write-through now
        Out(_a, Cdb.Write10(3, 1), new byte[Bs]).AssertCheck(SenseCode.WriteError);
        _volume.WriteCacheEnabled = true;
        // What is not a promise of durability goes on, so the data can be read and copied off.
        WriteBlocks(_a, 4, Pattern(Bs, 41));
        Assert.Equal(Pattern(Bs, 41), ReadBlocks(_b, 4, 1));
        Assert.Equal(5, _volume.LatchedWriteErrno);

        Assert.Equal(5, _volume.ClearWriteError());
        Run(_a, SyncCache).AssertGood();
        Out(_b, Cdb.Write10(1, 1, flags: 0x08), new byte[Bs]).AssertGood();
    }

    [Fact]
    public void AFailedFuaWriteLatchesButRefusedAllocationDoesNot()
    {
        _store.WriteErrno = 28; // ENOSPC: the thin store refused the allocation, nothing was lost
        Out(_a, Cdb.Write10(0, 1, flags: 0x08), new byte[Bs]).AssertCheck(SpaceAllocationFailed);
        _store.WriteErrno = null;
        Run(_a, SyncCache).AssertGood();
        _store.WriteErrno = 5; // EIO with RWF_DSYNC: writeback of other cached data may have failed
        Out(_a, Cdb.Write10(0, 1, flags: 0x08), new byte[Bs]).AssertCheck(SenseCode.WriteError);
        _store.WriteErrno = null;
        Run(_b, SyncCache).AssertCheck(SenseCode.WriteError);
    }

    [Fact]
    public void ACachedWriteErrorIsReportedByItsCommandAndNotLatched()
    {
        _store.WriteErrno = 5;
        Out(_a, Cdb.Write10(0, 1), new byte[Bs]).AssertCheck(SenseCode.WriteError);
        _store.WriteErrno = null;
        Run(_a, SyncCache).AssertGood();
        Assert.Equal(0, _volume.LatchedWriteErrno);
    }

    // ---- UNMAP / GET LBA STATUS ----

    private List<(ulong Lba, uint Blocks, int Status)> LbaStatus(VolumePath p, ulong lba, uint allocation = 4096)
    {
        var r = In(p, Cdb.ServiceActionIn16(OperationCode.ServiceActionGetLbaStatus, lba, allocation), (int)allocation);
        r.AssertGood();
        var d = r.DataIn;
        var list = new List<(ulong, uint, int)>();
        Assert.Equal(d.Length - 4, (int)BinaryPrimitives.ReadUInt32BigEndian(d));
        for (int at = 8; at + 16 <= d.Length; at += 16)
            list.Add((BinaryPrimitives.ReadUInt64BigEndian(d.AsSpan(at)), BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(at + 8)), d[at + 12] & 0x0F));
        return list;
    }

    [Fact]
    public void UnmapDeallocatesShrinksTheFileAndReadsZeroes()
    {
        int blocks = 1 << 20 >> 9; // 1 MiB
        WriteBlocks(_a, 0, Pattern(blocks * Bs, 15));
        _volume.Store.Flush();
        long before = AllocatedBytes(_volume.BackingPath);
        Assert.True(before >= 1 << 20);
        var status = LbaStatus(_a, 0);
        Assert.Equal(0, status[0].Status);
        Assert.True(status[0].Blocks >= blocks);

        var list = Cdb.UnmapList((0, 1024), (1024, (uint)(blocks - 1024)));
        Out(_b, Cdb.Unmap((ushort)list.Length), list).AssertGood();

        long after = AllocatedBytes(_volume.BackingPath);
        Assert.True(after <= before - (1 << 20) + 4096, $"allocated {before} -> {after}");
        status = LbaStatus(_a, 0);
        Assert.Equal((0UL, (uint)_volume.BlockCount, 1), status[0]); // whole (empty) volume is deallocated
        Assert.All(ReadBlocks(_a, 0, 8), b => Assert.Equal(0, b));
    }

    [Fact]
    public void GetLbaStatusShowsMappedAndDeallocatedRuns()
    {
        int fsBlock = _volume.Store.UnmapGranularity / Bs; // blocks per file system block
        WriteBlocks(_a, (uint)(8 * fsBlock), Pattern(fsBlock * Bs, 17));
        var s = LbaStatus(_a, 0);
        Assert.Equal((0UL, (uint)(8 * fsBlock), 1), s[0]);
        Assert.Equal(((ulong)(8 * fsBlock), (uint)fsBlock, 0), s[1]);
        Assert.Equal(((ulong)(9 * fsBlock), (uint)(_volume.BlockCount - 9 * fsBlock), 1), s[2]);
        // Starting inside the mapped run.
        Assert.Equal(((ulong)(8 * fsBlock + 1), (uint)fsBlock - 1, 0), LbaStatus(_a, (ulong)(8 * fsBlock + 1))[0]);
        // Allocation length fits one descriptor: exactly one comes back.
        Assert.Single(LbaStatus(_a, 0, 24));
        In(_a, Cdb.ServiceActionIn16(OperationCode.ServiceActionGetLbaStatus, (ulong)_volume.BlockCount, 64), 64)
            .AssertCheck(SenseCode.LbaOutOfRange);
    }

    [Fact]
    public void UnmapParameterListErrors()
    {
        WriteBlocks(_a, 0, Pattern(8 * Bs, 18));
        var shortList = new byte[4];
        Out(_a, Cdb.Unmap(4), shortList).AssertCheck(SenseCode.ParameterListLengthError);

        // A bad descriptor after a good one: nothing is unmapped.
        var list = Cdb.UnmapList((0, 8), ((ulong)_volume.BlockCount, 1));
        Out(_a, Cdb.Unmap((ushort)list.Length), list).AssertCheck(SenseCode.LbaOutOfRange);
        Assert.Equal(0, LbaStatus(_a, 0)[0].Status);

        var tooMany = Cdb.UnmapList(Enumerable.Range(0, 257).Select(i => ((ulong)i, 1u)).ToArray());
        Out(_a, Cdb.Unmap((ushort)tooMany.Length), tooMany).AssertCheck(SenseCode.InvalidFieldInParameterList);

        var tooLong = Cdb.UnmapList((0, (1u << 30) / Bs + 1));
        var r = Out(_a, Cdb.Unmap((ushort)tooLong.Length), tooLong);
        r.AssertCheck(SenseCode.InvalidFieldInParameterList);
        Assert.Equal((false, 16, -1), r.FieldPointer);

        var ok = Cdb.UnmapList((0, 8));
        var anchor = Out(_a, Cdb.Unmap((ushort)ok.Length, anchor: true), ok);
        anchor.AssertCheck(SenseCode.InvalidFieldInCdb);
        Assert.Equal((true, 1, 0), anchor.FieldPointer);

        Run(_a, Cdb.Unmap(0)).AssertGood(); // empty list: nothing to do
        // A truncated last descriptor is ignored, the whole ones run.
        Out(_a, Cdb.Unmap((ushort)(ok.Length - 1)), ok.AsSpan(0, ok.Length - 1)).AssertGood();
        Assert.Equal(0, LbaStatus(_a, 0)[0].Status);
        Out(_a, Cdb.Unmap((ushort)ok.Length), ok).AssertGood();
    }

    [Fact]
    public void UnmapLimitsTheTotalOfAllDescriptorsNotEachOne()
    {
        // SBC-3 UNMAP: MAXIMUM UNMAP LBA COUNT bounds the sum over the descriptors.
        var big = _f.CreateVolume(1L << 30, name: "big"); // sparse: 2^21 blocks
        var p = big.AddPath("big-a", Nexus("iqn.2024-01.test:a", 1));
        var b0 = In(p, Cdb.Inquiry(true, 0xB0, 64), 64);
        uint max = BinaryPrimitives.ReadUInt32BigEndian(b0.DataIn.AsSpan(20));
        Assert.True(2L * max <= big.BlockCount);
        uint half = max / 2;
        var over = Cdb.UnmapList((0, half), (half, max - half + 1));
        var r = Out(p, Cdb.Unmap((ushort)over.Length), over);
        r.AssertCheck(SenseCode.InvalidFieldInParameterList);
        Assert.Equal((false, 8 + 16 + 8, -1), r.FieldPointer); // the second descriptor goes past
        var exact = Cdb.UnmapList((0, half), (half, max - half));
        Out(p, Cdb.Unmap((ushort)exact.Length), exact).AssertGood();
    }

    [Fact]
    public void UnmapOnAStoreThatCannotDeallocateIsAnInvalidOpcode()
    {
        _store.Unmappable = false;
        var ok = Cdb.UnmapList((0, 8));
        Out(_a, Cdb.Unmap((ushort)ok.Length), ok).AssertCheck(SenseCode.InvalidCommandOperationCode);
    }

    // ---- WRITE SAME ----

    [Theory]
    [InlineData(2)]   // two blocks of Data-Out
    [InlineData(0)]   // half a block
    public void WriteSameWithDataOutOtherThanOneBlockIsRefusedAndWritesNothing(int blocks)
    {
        var data = Pattern(blocks == 0 ? Bs / 2 : blocks * Bs, 23);
        Out(_a, Cdb.Rw10(OperationCode.WriteSame10, 700, 4), data).AssertCheck(SenseCode.InvalidFieldInCdb);
        Out(_a, Cdb.Rw16(OperationCode.WriteSame16, 700, 4), data).AssertCheck(SenseCode.InvalidFieldInCdb);
        Assert.Equal(new byte[4 * Bs], ReadBlocks(_b, 700, 4));
    }

    [Fact]
    public void WriteSameRepeatsTheBlock()
    {
        var block = Pattern(Bs, 19);
        Out(_a, Cdb.Rw10(OperationCode.WriteSame10, 200, 5), block).AssertGood();
        var back = ReadBlocks(_b, 200, 5);
        for (int i = 0; i < 5; i++) Assert.Equal(block, back.AsSpan(i * Bs, Bs).ToArray());
        Out(_a, Cdb.Rw16(OperationCode.WriteSame16, 3000, 3000), block).AssertGood();
        Assert.Equal(block, ReadBlocks(_a, 5999, 1));
    }

    [Fact]
    public void WriteSameWithUnmapDeallocatesZeroes()
    {
        int fsBlock = _volume.Store.UnmapGranularity / Bs;
        WriteBlocks(_a, 0, Pattern(16 * fsBlock * Bs, 20));
        Out(_a, Cdb.Rw16(OperationCode.WriteSame16, 0, (uint)(16 * fsBlock), flags: 0x08), new byte[Bs]).AssertGood();
        Assert.Equal(1, LbaStatus(_a, 0)[0].Status);
        Assert.All(ReadBlocks(_a, 0, 4), b => Assert.Equal(0, b));
    }

    [Fact]
    public void WriteSameNdobWritesZeroesWithoutData()
    {
        WriteBlocks(_a, 10, Pattern(4 * Bs, 21));
        Run(_a, Cdb.Rw16(OperationCode.WriteSame16, 10, 4, flags: 0x01)).AssertGood();
        Assert.All(ReadBlocks(_a, 10, 4), b => Assert.Equal(0, b));
    }

    [Fact]
    public void WriteSameErrors()
    {
        var block = new byte[Bs];
        var zero = Out(_a, Cdb.Rw10(OperationCode.WriteSame10, 0, 0), block);
        zero.AssertCheck(SenseCode.InvalidFieldInCdb); // WSNZ=1
        Assert.Equal((true, 7, -1), zero.FieldPointer);
        Out(_a, Cdb.Rw10(OperationCode.WriteSame10, 0, 1, flags: 0x02), block).AssertCheck(SenseCode.InvalidFieldInCdb); // LBDATA
        Out(_a, Cdb.Rw10(OperationCode.WriteSame10, 0, 1, flags: 0x04), block).AssertCheck(SenseCode.InvalidFieldInCdb); // PBDATA
        Out(_a, Cdb.Rw16(OperationCode.WriteSame16, 0, 1, flags: 0x10), block).AssertCheck(SenseCode.InvalidFieldInCdb); // ANCHOR
        Out(_a, Cdb.Rw16(OperationCode.WriteSame16, (ulong)_volume.BlockCount - 1, 2), block).AssertCheck(SenseCode.LbaOutOfRange);
        Out(_a, Cdb.Rw16(OperationCode.WriteSame16, 0, (1u << 30) / Bs + 1), block).AssertCheck(SenseCode.InvalidFieldInCdb);
        // Beyond MAXIMUM WRITE SAME LENGTH (0xFFFF, as LIO) the length is refused before the range.
        Out(_a, Cdb.Rw16(OperationCode.WriteSame16, 0, 0x10000), block).AssertCheck(SenseCode.InvalidFieldInCdb);
        Out(_a, Cdb.Rw10(OperationCode.WriteSame10, 0, 1), new byte[Bs - 1]).AssertCheck(SenseCode.InvalidFieldInCdb);
        _store.WriteErrno = 5;
        Out(_a, Cdb.Rw10(OperationCode.WriteSame10, 0, 1), Pattern(Bs, 1)).AssertCheck(SenseCode.WriteError);
    }

    // ---- COMPARE AND WRITE ----

    [Fact]
    public void CompareAndWriteWritesWhenTheMediumMatches()
    {
        var old = Pattern(2 * Bs, 22);
        var @new = Pattern(2 * Bs, 23);
        WriteBlocks(_a, 300, old);
        Out(_b, Cdb.CompareAndWrite(300, 2), [.. old, .. @new], segments: 6).AssertGood();
        Assert.Equal(@new, ReadBlocks(_a, 300, 2));
    }

    [Fact]
    public void CompareAndWriteMiscompareReportsTheOffsetAndWritesNothing()
    {
        var old = Pattern(2 * Bs, 24);
        WriteBlocks(_a, 310, old);
        var expected = (byte[])old.Clone();
        expected[Bs + 5] ^= 1;
        var r = Out(_b, Cdb.CompareAndWrite(310, 2), [.. expected, .. Pattern(2 * Bs, 25)]);
        r.AssertCheck(SenseCode.MiscompareDuringVerifyOperation);
        Assert.Equal((ulong)(Bs + 5), r.Information);
        Assert.Equal(old, ReadBlocks(_a, 310, 2));
    }

    [Fact]
    public void CompareAndWriteErrors()
    {
        Run(_a, Cdb.CompareAndWrite(0, 0)).AssertGood(); // nothing to compare
        Out(_a, Cdb.CompareAndWrite(0, 2), new byte[3 * Bs]).AssertCheck(SenseCode.InvalidFieldInCdb);
        Out(_a, Cdb.CompareAndWrite(0, 2), new byte[5 * Bs]).AssertCheck(SenseCode.InvalidFieldInCdb);
    }

    [Fact]
    public void CompareAndWriteOf256BlocksIsNotTakenForZero()
    {
        // The one-byte NUMBER OF LOGICAL BLOCKS carries 256 as 0; the Data-Out (2 x 256 blocks)
        // shows what was meant, and the command is refused, not done as "nothing to compare".
        Out(_a, Cdb.CompareAndWrite(0, 0), new byte[2 * 256 * Bs]).AssertCheck(SenseCode.InvalidFieldInCdb);
        Out(_a, Cdb.CompareAndWrite((ulong)_volume.BlockCount, 1), new byte[2 * Bs]).AssertCheck(SenseCode.LbaOutOfRange);
        Out(_a, Cdb.CompareAndWrite(0, 1, flags: 0x20), new byte[2 * Bs]).AssertCheck(SenseCode.InvalidFieldInCdb);
        _store.ReadErrno = 5;
        Out(_a, Cdb.CompareAndWrite(0, 1), new byte[2 * Bs]).AssertCheck(SenseCode.UnrecoveredReadError);
        _store.ReadErrno = null;
        _store.WriteErrno = 5;
        Out(_a, Cdb.CompareAndWrite(0, 1), new byte[2 * Bs]).AssertCheck(SenseCode.WriteError);
    }

    [Fact]
    public void CompareAndWriteIsAtomicAgainstWritesOnOtherPaths()
    {
        // A counter in block 0 is incremented by CAW loops on two paths while a third thread
        // writes other data over blocks 0..1 through plain WRITE, always with a valid counter
        // (it re-reads and writes the same value back: any write interleaving inside a CAW
        // would make two CAWs succeed from the same old value and lose an increment).
        const int perThread = 150;
        WriteBlocks(_a, 0, new byte[Bs]);
        int successes = 0, plainWrites = 0;
        var stop = false;
        void Caw(VolumePath p)
        {
            int done = 0;
            while (done < perThread)
            {
                var cur = ReadBlocks(p, 0, 1);
                var next = (byte[])cur.Clone();
                BinaryPrimitives.WriteInt64BigEndian(next, BinaryPrimitives.ReadInt64BigEndian(cur) + 1);
                var r = Out(p, Cdb.CompareAndWrite(0, 1), [.. cur, .. next], segments: 3);
                if (r.Status == ScsiStatus.Good)
                {
                    done++;
                    Interlocked.Increment(ref successes);
                }
                else r.AssertCheck(SenseCode.MiscompareDuringVerifyOperation);
            }
        }
        var writer = new Thread(() =>
        {
            while (!Volatile.Read(ref stop))
            {
                Out(_b, Cdb.Write10(1, 1), Pattern(Bs, 26)).AssertGood();
                Interlocked.Increment(ref plainWrites);
            }
        });
        var t1 = new Thread(() => Caw(_a));
        var t2 = new Thread(() => Caw(_b));
        writer.Start(); t1.Start(); t2.Start();
        t1.Join(); t2.Join();
        Volatile.Write(ref stop, true);
        writer.Join();
        Assert.Equal(2 * perThread, successes);
        Assert.True(plainWrites > 0);
        Assert.Equal(2 * perThread, BinaryPrimitives.ReadInt64BigEndian(ReadBlocks(_a, 0, 1)));
    }

    // ---- READ CAPACITY ----

    [Fact]
    public void ReadCapacity10And16()
    {
        var r10 = In(_a, [OperationCode.ReadCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
        r10.AssertGood();
        Assert.Equal((uint)(_volume.BlockCount - 1), BinaryPrimitives.ReadUInt32BigEndian(r10.DataIn));
        Assert.Equal((uint)Bs, BinaryPrimitives.ReadUInt32BigEndian(r10.DataIn.AsSpan(4)));

        var r16 = In(_a, Cdb.ServiceActionIn16(OperationCode.ServiceActionReadCapacity16, 0, 32), 32);
        r16.AssertGood();
        Assert.Equal((ulong)(_volume.BlockCount - 1), BinaryPrimitives.ReadUInt64BigEndian(r16.DataIn));
        Assert.Equal((uint)Bs, BinaryPrimitives.ReadUInt32BigEndian(r16.DataIn.AsSpan(8)));
        Assert.Equal(0x80 | 0x40, r16.DataIn[14] & 0xC0); // LBPME, LBPRZ
        Assert.Equal(0, r16.DataIn[14] & 0x3F); // LOWEST ALIGNED LOGICAL BLOCK ADDRESS
        Assert.Equal(0, r16.DataIn[15]);
        Assert.Equal(0, r16.DataIn[13] & 0x0F); // a file claims no physical block

        _store.Unmappable = false;
        Assert.Equal(0, In(_a, Cdb.ServiceActionIn16(OperationCode.ServiceActionReadCapacity16, 0, 32), 32).DataIn[14] & 0xC0);
        Assert.Equal(12, In(_a, Cdb.ServiceActionIn16(OperationCode.ServiceActionReadCapacity16, 0, 12), 32).DataInLength);
        In(_a, Cdb.ServiceActionIn16(0x11, 0, 32), 32).AssertCheck(SenseCode.InvalidFieldInCdb);
    }

    [Theory]
    [InlineData(512, 4096, 3)]   // 512e disk, or a file system with 4 KiB blocks
    [InlineData(512, 1024, 1)]
    [InlineData(512, 512, 0)]
    [InlineData(512, 0, 0)]      // unknown
    [InlineData(512, 3072, 0)]   // not a power-of-two multiple: no claim
    [InlineData(4096, 4096, 0)]  // 4Kn
    [InlineData(4096, 512, 0)]   // a physical block smaller than the logical one says nothing
    public void ReadCapacity16ReportsTheStoresPhysicalBlockExponent(int blockSize, int physical, int exponent)
    {
        FaultStore store = null!;
        var v = _f.CreateVolume(4 << 20, name: $"pb{blockSize}-{physical}", blockSize: blockSize, wrap: s => store = new FaultStore(s));
        store.PhysicalBlockSizeOverride = physical;
        var p = v.AddPath("pb-a", Nexus("iqn.2024-01.test:a", 1));
        var r16 = In(p, Cdb.ServiceActionIn16(OperationCode.ServiceActionReadCapacity16, 0, 32), 32);
        r16.AssertGood();
        Assert.Equal(exponent, BlockLimitsOf.LogicalBlocksPerPhysicalBlockExponent(v));
        // Reported as the store says: block devices give BLKPBSZGET, files claim 0.
        Assert.Equal(exponent, r16.DataIn[13] & 0x0F);
        Assert.Equal(0, r16.DataIn[14] & 0x3F);
    }

    [Fact]
    public void ReadCapacity10OfAHugeVolumeSaysUseSixteen()
    {
        var huge = _f.CreateVolume(3L << 40, name: "huge").AddPath("h", null); // sparse: 3 TiB costs nothing
        var r = In(huge, [OperationCode.ReadCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
        Assert.Equal(0xFFFFFFFFu, BinaryPrimitives.ReadUInt32BigEndian(r.DataIn));
        var r16 = In(huge, Cdb.ServiceActionIn16(OperationCode.ServiceActionReadCapacity16, 0, 32), 32);
        Assert.Equal((3UL << 40) / Bs - 1, BinaryPrimitives.ReadUInt64BigEndian(r16.DataIn));
        // And the far end is addressable.
        var block = Pattern(Bs, 27);
        Out(huge, Cdb.Rw16(OperationCode.Write16, (3UL << 40) / Bs - 1, 1), block).AssertGood();
        Assert.Equal(block, In(huge, Cdb.Rw16(OperationCode.Read16, (3UL << 40) / Bs - 1, 1), Bs).DataIn);
    }

    // ---- hot path ----

    [Fact]
    public unsafe void ReadAndWriteAllocateNothing()
    {
        var command = new ScsiCommand();
        using var data = NativeData.From(Pattern(16 * Bs, 28), segments: 8);
        var write = Cdb.Write10(8, 16);
        var read = Cdb.Read10(8, 16);
        void RunBoth()
        {
            command.Reset();
            command.SetCdb(write);
            command.Data = data.Buffer;
            CommandSet.Execute(_a, command);
            command.Reset();
            command.SetCdb(read);
            command.Data = data.Buffer;
            CommandSet.Execute(_a, command);
        }
        for (int i = 0; i < 10; i++) RunBoth(); // warm up (JIT, lock per-thread state)
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 200; i++) RunBoth();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(ScsiStatus.Good, command.Status);
        Assert.Equal(0, allocated);
    }
}
