using System.Runtime.InteropServices;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Tests.Scsi;

namespace TcmuSharedVolume.Tests.Backends.Rbd;

/// <summary>RbdStore against the real one-node Ceph: every request goes through librbd to an OSD.</summary>
[Collection(CephCollection.Name)]
public sealed class RbdStoreTests(CephCluster ceph) : IDisposable
{
    private const int MiB = 1 << 20;
    private readonly List<IDisposable> _open = [];

    private RbdStore Open(string image)
    {
        var store = RbdStore.Open(CephCluster.Pool, image, ceph.ConfPath, "admin");
        _open.Add(store);
        return store;
    }

    public void Dispose()
    {
        foreach (var d in Enumerable.Reverse(_open)) d.Dispose();
    }

    private static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    private static byte[] ReadBack(IBackingStore store, long offset, int length)
    {
        var b = new byte[length];
        store.Read(b, offset);
        return b;
    }

    [Fact]
    public void OpensTheImageWithItsSize()
    {
        var store = Open(ceph.CreateImage("48M"));
        Assert.Equal(48L * MiB, store.SizeBytes);
        Assert.Equal(4L * MiB, store.ObjectSize);
        Assert.True(store.SupportsUnmap);
        Assert.True(store.UnmapReadsZeroes);
    }

    [Fact]
    public void AMissingImageIsENOENT()
    {
        var e = Assert.Throws<BackingStoreException>(() => RbdStore.Open(CephCluster.Pool, "no-such-image", ceph.ConfPath));
        Assert.Equal(2, e.Errno);
        Assert.Contains("no-such-image", e.Message);
    }

    [Fact]
    public void AMissingPoolIsENOENT()
    {
        var e = Assert.Throws<BackingStoreException>(() => RbdStore.Open("no-such-pool", "x", ceph.ConfPath));
        Assert.Equal(2, e.Errno);
        Assert.Contains("no-such-pool", e.Message);
    }

    [Fact]
    public void ScatterGatherWritesReadBackThroughAnyLayout()
    {
        var store = Open(ceph.CreateImage());
        // Across an object boundary (4 MiB), from uneven segments, back into other segments.
        long offset = 4L * MiB - 3 * 4096;
        var bytes = Pattern(40 * 1024 + 512, 1);
        using (var data = NativeData.From(bytes, segments: 5))
            store.Write(data.Buffer.Segments, offset, forceUnitAccess: false);
        using (var into = new NativeData(bytes.Length, segments: 3))
        {
            store.Read(into.Buffer.Segments, offset);
            Assert.Equal(bytes, into.ToArray());
        }
        Assert.Equal(bytes, ReadBack(store, offset, bytes.Length));
        Assert.Equal(new byte[512], ReadBack(store, offset - 512, 512));
    }

    [Fact]
    public void WritesAreInTheClusterWhenTheyReturn()
    {
        // rbd_cache=false: another client (a new rados_t) reads what returned, without a flush.
        string image = ceph.CreateImage();
        var a = Open(image);
        var b = Open(image);
        var plain = Pattern(8192, 2);
        a.Write(plain, 0, forceUnitAccess: false);
        Assert.Equal(plain, ReadBack(b, 0, plain.Length));
    }

    [Fact]
    public void FuaWritesOfOneOrManySegmentsAreInTheCluster()
    {
        string image = ceph.CreateImage();
        var a = Open(image);
        var b = Open(image);
        var one = Pattern(4096, 3);
        a.Write(one, 8192, forceUnitAccess: true); // rbd_aio_write2 with FADVISE_FUA
        var many = Pattern(3 * 4096 + 100, 4);
        using (var data = NativeData.From(many, segments: 4))
            a.Write(data.Buffer.Segments, MiB, forceUnitAccess: true); // writev, then flush
        Assert.Equal(one, ReadBack(b, 8192, one.Length));
        Assert.Equal(many, ReadBack(b, MiB, many.Length));
    }

    [Fact]
    public void FlushCompletes()
    {
        var store = Open(ceph.CreateImage());
        store.Write(Pattern(4096, 5), 0, forceUnitAccess: false);
        store.Flush();
        store.Flush();
    }

    [Fact]
    public void UnmapReadsBackZeroesWholeObjectsAndParts()
    {
        var store = Open(ceph.CreateImage());
        var bytes = Pattern(12 * MiB, 6);
        store.Write(bytes, 0, forceUnitAccess: false);
        // A whole object (4-8 MiB), and a part of one that is not aligned to anything librbd
        // would discard on its own (rbd_skip_partial_discard is off).
        store.Unmap(4L * MiB, 4L * MiB);
        store.Unmap(9L * MiB + 512, 5 * 512);

        var after = ReadBack(store, 0, bytes.Length);
        var expected = (byte[])bytes.Clone();
        Array.Clear(expected, 4 * MiB, 4 * MiB);
        Array.Clear(expected, 9 * MiB + 512, 5 * 512);
        Assert.True(expected.AsSpan().SequenceEqual(after), "unmapped ranges must read zeroes and the rest must keep its data");

        // The freed object is a hole; written objects are mapped.
        Assert.Equal(AllocationState.Mapped, store.GetAllocation(0, out long run));
        Assert.Equal(4L * MiB, run);
        Assert.Equal(AllocationState.Deallocated, store.GetAllocation(4L * MiB, out run));
        Assert.Equal(4L * MiB, run);
        Assert.Equal(AllocationState.Mapped, store.GetAllocation(8L * MiB, out _));
    }

    [Fact]
    public void GetAllocationOfANewImageIsOneHole()
    {
        var store = Open(ceph.CreateImage("32M"));
        Assert.Equal(AllocationState.Deallocated, store.GetAllocation(0, out long run));
        Assert.Equal(32L * MiB, run);
        store.Write(Pattern(4096, 7), 20L * MiB, forceUnitAccess: false);
        Assert.Equal(AllocationState.Deallocated, store.GetAllocation(MiB, out run));
        Assert.Equal(20L * MiB - MiB, run);
        Assert.Equal(AllocationState.Mapped, store.GetAllocation(20L * MiB, out run));
        Assert.True(run >= 4096, $"run {run}");
        Assert.Throws<ArgumentOutOfRangeException>(() => store.GetAllocation(32L * MiB, out _));
    }

    [Fact]
    public void WriteZeroesZeroesOnlyTheRange()
    {
        var store = Open(ceph.CreateImage());
        var bytes = Pattern(2 * MiB, 8);
        store.Write(bytes, MiB, forceUnitAccess: false);
        store.WriteZeroes(MiB + 4096 + 512, 64 * 1024);
        var expected = (byte[])bytes.Clone();
        Array.Clear(expected, 4096 + 512, 64 * 1024);
        Assert.True(expected.AsSpan().SequenceEqual(ReadBack(store, MiB, bytes.Length)));
    }

    [Fact]
    public void ResizeGrowsTheImageAndRefusesToShrinkIt()
    {
        string image = ceph.CreateImage("16M");
        var store = Open(image);
        store.Resize(40L * MiB);
        Assert.Equal(40L * MiB, store.SizeBytes);
        var tail = Pattern(4096, 9);
        store.Write(tail, 40L * MiB - 4096, forceUnitAccess: false);
        Assert.Contains("40 MiB", ceph.Rbd("info", $"{CephCluster.Pool}/{image}"));
        using (var other = RbdStore.Open(CephCluster.Pool, image, ceph.ConfPath))
        {
            Assert.Equal(40L * MiB, other.SizeBytes);
            Assert.Equal(tail, ReadBack(other, 40L * MiB - 4096, 4096));
        }

        var e = Assert.Throws<BackingStoreException>(() => store.Resize(16L * MiB));
        Assert.Equal(22, e.Errno);
        Assert.Equal(40L * MiB, store.SizeBytes);
        Assert.Contains("40 MiB", ceph.Rbd("info", $"{CephCluster.Pool}/{image}"));
    }

    [Fact]
    public void ResizeTakesAnImageTheAdministratorGrew()
    {
        string image = ceph.CreateImage("16M");
        var store = Open(image);
        ceph.Rbd("resize", "--no-progress", "--size", "64M", $"{CephCluster.Pool}/{image}");
        store.Resize(32L * MiB); // the image already has it: nothing to do in Ceph
        Assert.Equal(32L * MiB, store.SizeBytes);
        Assert.Contains("64 MiB", ceph.Rbd("info", $"{CephCluster.Pool}/{image}"));
    }

    [Fact]
    public void RequestsOutsideTheImageAreRefusedBeforeCeph()
    {
        var store = Open(ceph.CreateImage("16M"));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Write(new byte[4096], 16L * MiB - 512, false));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Read(new byte[512], 16L * MiB));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Unmap(-512, 512));
    }

    [Fact]
    public void ADisposedStoreRefusesRequests()
    {
        var store = RbdStore.Open(CephCluster.Pool, ceph.CreateImage("16M"), ceph.ConfPath);
        store.Dispose();
        Assert.Throws<ObjectDisposedException>(() => store.Read(new byte[512], 0));
        store.Dispose();
    }

    [Fact]
    public void ABlocklistedClientGetsESHUTDOWN()
    {
        string image = ceph.CreateImage("16M");
        var store = Open(image);
        store.Write(Pattern(4096, 10), 0, forceUnitAccess: false);
        string address = BlocklistAddress(store.ClientAddresses);
        ceph.Ceph("osd", "blocklist", "add", address, "600");
        try
        {
            var e = FailsOnceTheOsdKnows(() => store.Write(new byte[4096], 4096, forceUnitAccess: false));
            Assert.Equal(RbdStore.ESHUTDOWN, e.Errno);
            Assert.Contains("client blocklisted by the Ceph cluster", e.Message);
            Assert.Equal(RbdStore.ESHUTDOWN, Assert.Throws<BackingStoreException>(() => store.Read(new byte[4096], 0)).Errno);
            // Another client is not affected.
            using var other = RbdStore.Open(CephCluster.Pool, image, ceph.ConfPath);
            other.Write(new byte[4096], 4096, forceUnitAccess: true);
        }
        finally
        {
            ceph.Ceph("osd", "blocklist", "rm", address);
        }
    }

    /// <summary>
    /// The blocklist reaches the OSD with the next OSD map; until then a request can still
    /// succeed. Repeats the request until it fails (bounded, so a missing failure fails the test).
    /// </summary>
    internal static BackingStoreException FailsOnceTheOsdKnows(Action request)
    {
        for (int i = 0; i < 300; i++)
        {
            try { request(); }
            catch (BackingStoreException e) { return e; }
            Thread.Sleep(100);
        }
        throw new Xunit.Sdk.XunitException("requests of a blocklisted client kept succeeding for 30 s");
    }

    /// <summary>
    /// rados_getaddrs answers e.g. <c>[v2:127.0.0.1:0/1234,v1:127.0.0.1:0/1234]</c> or
    /// <c>127.0.0.1:0/1234</c>; <c>ceph osd blocklist add</c> takes one address with its nonce.
    /// </summary>
    internal static string BlocklistAddress(string addrs)
    {
        var first = addrs.Trim('[', ']').Split(',')[0];
        foreach (var prefix in new[] { "v2:", "v1:", "any:" })
            if (first.StartsWith(prefix, StringComparison.Ordinal)) first = first[prefix.Length..];
        Assert.Matches(@"^[0-9.]+:\d+/\d+$", first);
        return first;
    }

    [Fact]
    public unsafe void ReadsAndWritesAllocateNothingInSteadyState()
    {
        var store = Open(ceph.CreateImage("16M"));
        var buffer = (byte*)NativeMemory.AlignedAlloc(4096, 4096);
        try
        {
            var iov = new IoVec((nint)buffer, 4096);
            for (int i = 0; i < 20; i++) Cycle(store, &iov, i); // first use makes the thread's waiter
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 200; i++) Cycle(store, &iov, i);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.Equal(0, allocated);
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }

        static void Cycle(RbdStore store, IoVec* iov, int i)
        {
            long offset = (i % 64) * 4096L;
            store.Write(new ReadOnlySpan<IoVec>(iov, 1), offset, forceUnitAccess: (i & 1) != 0);
            store.Read(new ReadOnlySpan<IoVec>(iov, 1), offset);
            if (i % 10 == 0) store.Flush();
        }
    }
}
