using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Tests.Scsi;

namespace TcmuSharedVolume.Tests.Backends;

public sealed class SparseFileStoreTests : IDisposable
{
    private readonly ScsiFixture _f = new();
    private string File(string name) => Path.Combine(_f.Directory, name);

    public void Dispose() => _f.Dispose();

    [Fact]
    public void CreatesAMissingFileSparseAtTheGivenSize()
    {
        using var s = SparseFileStore.Open(File("a.img"), new BackingStoreOptions { CreateSizeBytes = 64 << 20 });
        Assert.Equal(64 << 20, s.SizeBytes);
        Assert.Equal(64L << 20, new FileInfo(File("a.img")).Length);
        Assert.True(ScsiFixture.AllocatedBytes(File("a.img")) < 1 << 20);
        Assert.True(s.SupportsUnmap);
        Assert.True(s.UnmapReadsZeroes);
        Assert.True(s.UnmapGranularity >= 512);
        // Files claim no physical block (libiscsi GET LBA STATUS UnmapSingle with 4 KiB blocks).
        Assert.Equal(0, ((IBackingStore)s).PhysicalBlockSize);
        Assert.Equal(AllocationState.Deallocated, s.GetAllocation(0, out long run));
        Assert.Equal(64 << 20, run);
    }

    [Fact]
    public void PreallocatesOnlyWhenAsked()
    {
        using var s = SparseFileStore.Open(File("p.img"), new BackingStoreOptions { CreateSizeBytes = 8 << 20, Preallocate = true });
        Assert.True(ScsiFixture.AllocatedBytes(File("p.img")) >= 8 << 20);
    }

    [Fact]
    public void MissingFileWithoutSizeIsAnErrorAndAnExistingFileKeepsItsSize()
    {
        Assert.Throws<FileNotFoundException>(() => SparseFileStore.Open(File("none.img")));
        using (SparseFileStore.Open(File("k.img"), new BackingStoreOptions { CreateSizeBytes = 1 << 20 })) { }
        using var again = SparseFileStore.Open(File("k.img"), new BackingStoreOptions { CreateSizeBytes = 2 << 20 });
        Assert.Equal(1 << 20, again.SizeBytes);
    }

    [Fact]
    public void FactoryPicksTheStoreByFileType()
    {
        using (var s = BackingStores.Open(File("f.img"), new BackingStoreOptions { CreateSizeBytes = 1 << 20 }))
            Assert.IsType<SparseFileStore>(s);
        using (var s = BackingStores.Open(File("f.img")))
            Assert.IsType<SparseFileStore>(s);
        Assert.Throws<BackingStoreException>(() => BackingStores.Open("/dev/null"));
        Assert.Throws<BackingStoreException>(() => BlockDeviceStore.Open(File("f.img")));
    }

    [Fact]
    public unsafe void ScatterGatherOverMoreThanIovMaxSegments()
    {
        using var s = SparseFileStore.Open(File("v.img"), new BackingStoreOptions { CreateSizeBytes = 1 << 20 });
        var bytes = new byte[3000];
        new Random(1).NextBytes(bytes);
        using (var data = NativeData.From(bytes, segments: 1500)) // > IOV_MAX (1024): continues in a second call
        {
            Span<IoVec> iov = data.Buffer.Segments.ToArray();
            s.Write(iov, 4096 + 3, forceUnitAccess: true);
        }
        var back = new byte[3000];
        s.Read(back, 4096 + 3);
        Assert.Equal(bytes, back);
        using var into = new NativeData(3000, segments: 1100);
        s.Read(into.Buffer.Segments, 4096 + 3);
        Assert.Equal(bytes, into.ToArray());
    }

    [Fact]
    public void WritesFromManyThreadsAtOnce_FuaAndNot_AllLandWhereTheyWereAimed()
    {
        const int threads = 8, region = 64 << 10, rounds = 50;
        using var s = SparseFileStore.Open(File("c.img"), new BackingStoreOptions { CreateSizeBytes = threads * region });
        var last = new byte[threads][];
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            var rng = new Random(t);
            for (int r = 0; r < rounds; r++)
            {
                var bytes = new byte[region];
                rng.NextBytes(bytes);
                using (var data = NativeData.From(bytes, segments: 16))
                    s.Write(data.Buffer.Segments.ToArray(), (long)t * region, forceUnitAccess: r % 5 == 0);
                if (r % 7 == 3) s.Write(bytes.AsSpan(0, 4096), (long)t * region, forceUnitAccess: false); // the byte overload
                last[t] = bytes;
            }
        });
        var back = new byte[region];
        for (int t = 0; t < threads; t++)
        {
            s.Read(back, (long)t * region);
            Assert.Equal(last[t], back);
        }
    }

    [Fact]
    public void UnmapAndWriteZeroesReadBackZeroesIncludingUnalignedEdges()
    {
        using var s = SparseFileStore.Open(File("z.img"), new BackingStoreOptions { CreateSizeBytes = 1 << 20 });
        var ones = new byte[256 << 10];
        Array.Fill(ones, (byte)0xA5);
        s.Write(ones, 0, forceUnitAccess: false);
        s.Unmap(1000, 100_000);
        s.WriteZeroes(150_000, 3333);
        var back = new byte[256 << 10];
        s.Read(back, 0);
        for (int i = 0; i < back.Length; i++)
        {
            bool zero = (i >= 1000 && i < 101_000) || (i >= 150_000 && i < 153_333);
            if (back[i] != (zero ? 0 : 0xA5)) Assert.Fail($"byte {i} is {back[i]:X2}");
        }
        // The aligned middle of the punched range is a hole now.
        long mid = (1000 + s.UnmapGranularity * 2) / s.UnmapGranularity * s.UnmapGranularity;
        Assert.Equal(AllocationState.Deallocated, s.GetAllocation(mid, out _));
        Assert.Equal(AllocationState.Mapped, s.GetAllocation(0, out long run));
        Assert.True(run >= 1000 && run < 101_000);
        s.Flush();
    }

    [Fact]
    public void RangesOutsideTheStoreAreRefused()
    {
        using var s = SparseFileStore.Open(File("r.img"), new BackingStoreOptions { CreateSizeBytes = 1 << 20 });
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Unmap((1 << 20) - 10, 20));
        Assert.Throws<ArgumentOutOfRangeException>(() => s.GetAllocation(1 << 20, out _));
    }

    [Fact]
    public void ReadingPastTheEndOfATruncatedFileIsAnIoError()
    {
        string path = File("t.img");
        using var s = SparseFileStore.Open(path, new BackingStoreOptions { CreateSizeBytes = 1 << 20 });
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite)) fs.SetLength(4096);
        var buffer = new byte[8192];
        var e = Assert.Throws<BackingStoreException>(() => s.Read(buffer, 0));
        Assert.Equal(5, e.Errno);
    }

    [Fact]
    public void DisposedStoreRefusesIo()
    {
        var s = SparseFileStore.Open(File("d.img"), new BackingStoreOptions { CreateSizeBytes = 1 << 20 });
        s.Dispose();
        s.Dispose();
        Assert.Throws<ObjectDisposedException>(() => s.Flush());
    }
}
