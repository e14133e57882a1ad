using System.Diagnostics;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Tests.Scsi;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Tests.Backends;

/// <summary>Runs only as root with losetup: a loop device over a sparse file stands in for an LV.</summary>
public sealed class LoopDeviceFactAttribute : FactAttribute
{
    public LoopDeviceFactAttribute()
    {
        if (Environment.UserName != "root" || !File.Exists("/dev/loop-control") || !File.Exists("/usr/sbin/losetup"))
            Skip = "needs root and losetup for a loop device";
    }
}

public sealed class BlockDeviceStoreTests : IDisposable
{
    private readonly ScsiFixture _f = new();
    private string? _loop;

    public void Dispose()
    {
        if (_loop is not null) Losetup("-d", _loop);
        _f.Dispose();
    }

    private static string Losetup(params string[] args)
    {
        var psi = new ProcessStartInfo("/usr/sbin/losetup") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, p.StandardError.ReadToEnd());
        return output;
    }

    private string CreateLoop(long size, int sectorSize = 512)
    {
        string file = Path.Combine(_f.Directory, "lv.img");
        using (var fs = new FileStream(file, FileMode.CreateNew)) fs.SetLength(size);
        _loop = Losetup("-f", "--show", "--sector-size", sectorSize.ToString(), file);
        return _loop;
    }

    [LoopDeviceFact]
    public void ABlockDeviceInUseIsRefusedBecauseItIsOpenedExclusively()
    {
        // O_EXCL on a block device fails with EBUSY while it is mounted, held by device-mapper or
        // md, or opened O_EXCL elsewhere: here the first store holds it as a mount would.
        string dev = CreateLoop(8 << 20);
        using (var first = BackingStores.Open(dev))
        {
            var e = Assert.Throws<BackingStoreException>(() => BackingStores.Open(dev));
            Assert.Equal(16, e.Errno);
            Assert.Contains("is in use (mounted, or part of a device-mapper/md device", e.Message);
            Assert.Throws<BackingStoreException>(() => BlockDeviceStore.Open(dev, new BackingStoreOptions { DirectIo = true }));
        }
        using var again = BackingStores.Open(dev); // free again once the holder closed it
        Assert.Equal(8 << 20, again.SizeBytes);
    }

    [LoopDeviceFact]
    public void TwoDeviceNodesOfOneBlockDeviceAreOneVolume()
    {
        // /dev/vg/lv and /dev/mapper/vg-lv: grouped by st_rdev, and the second path does not
        // trip over the first path's exclusive open.
        string dev = CreateLoop(8 << 20);
        string link = Path.Combine(_f.Directory, "lv-link");
        File.CreateSymbolicLink(link, dev);
        var opener = new VolumeOpener(Path.Combine(_f.Directory, "state"));
        var served = new HashSet<Volume>();
        var a = opener.GetOrOpen(VolumeConfig.Parse("sharedvol/" + dev), 512, served.Contains);
        served.Add(a);
        try
        {
            Assert.Same(a, opener.GetOrOpen(VolumeConfig.Parse("sharedvol/" + link), 512, served.Contains));
        }
        finally
        {
            a.Dispose();
        }
    }

    [LoopDeviceFact]
    public void SizeDiscardAndZeroOutOnABlockDevice()
    {
        string dev = CreateLoop(16 << 20);
        using var store = BackingStores.Open(dev);
        var s = Assert.IsType<BlockDeviceStore>(store);
        Assert.Equal(16 << 20, s.SizeBytes);
        Assert.Equal(512, s.LogicalSectorSize);
        Assert.Equal(512, s.PhysicalBlockSize); // a loop device over a file: BLKPBSZGET answers 512
        Assert.False(s.UnmapReadsZeroes); // not claimed unless the administrator says so

        var data = new byte[64 << 10];
        Array.Fill(data, (byte)0x5A);
        s.Write(data, 0, forceUnitAccess: true);
        s.Unmap(512, 32 << 10);     // unaligned start: edges zeroed, middle discarded
        s.WriteZeroes(40 << 10, 4096);
        var back = new byte[64 << 10];
        s.Read(back, 0);
        Assert.All(back.AsSpan(0, 512).ToArray(), b => Assert.Equal(0x5A, b));
        Assert.All(back.AsSpan(40 << 10, 4096).ToArray(), b => Assert.Equal(0, b));
        Assert.All(back.AsSpan(60 << 10).ToArray(), b => Assert.Equal(0x5A, b));
        Assert.Equal(AllocationState.Mapped, s.GetAllocation(0, out long run));
        Assert.Equal(16 << 20, run);
        s.Flush();
    }

    [LoopDeviceFact]
    public void DirectIoBouncesUnalignedSegmentsThroughTheCommandSet()
    {
        string dev = CreateLoop(8 << 20);
        var store = BlockDeviceStore.Open(dev, new BackingStoreOptions { DirectIo = true });
        using var volume = new Volume(dev, store, 512, VolumeIdentity.FromBackingPath(dev), new InMemoryReservationStore());
        var path = volume.AddPath("p", null);
        var bytes = new byte[8 * 512];
        new Random(3).NextBytes(bytes);
        // NativeData's segments have odd lengths and malloc'ed bases: O_DIRECT would refuse them.
        ScsiFixture.Out(path, Cdb.Write10(16, 8), bytes, segments: 5).AssertGood();
        var r = ScsiFixture.In(path, Cdb.Read10(16, 8), 8 * 512, segments: 3);
        r.AssertGood();
        Assert.Equal(bytes, r.DataIn);
    }

    [LoopDeviceFact]
    public void DirectIoNeedsWholeLogicalBlocksOfTheDevice()
    {
        // A 4Kn device: O_DIRECT moves whole 4 KiB blocks, so a 512-byte volume is refused at
        // open with the reason, not with EINVAL on its first single-block write.
        string dev = CreateLoop(8 << 20, sectorSize: 4096);
        var opener = new VolumeOpener(Path.Combine(_f.Directory, "state"));
        var e = Assert.Throws<BackingStoreException>(() => opener.GetOrOpen(VolumeConfig.Parse($"sharedvol/{dev};direct=1"), 512, _ => false));
        Assert.Contains("direct=1 needs hw_block_size to be a multiple of the device's logical block size (4096 bytes), and it is 512", e.Message);
        using var ok = opener.GetOrOpen(VolumeConfig.Parse($"sharedvol/{dev};direct=1"), 4096, _ => false);
        Assert.Equal(4096, ((BlockDeviceStore)ok.Store).LogicalSectorSize);
        // Without O_DIRECT the page cache makes 512-byte blocks work on it.
        ok.Dispose();
        using var buffered = opener.GetOrOpen(VolumeConfig.Parse($"sharedvol/{dev}"), 512, _ => false);
    }

    [LoopDeviceFact]
    public void TheQueuesDiscardLimitsAreTheStoresAndLbprzNeedsTheAdministratorOnAPlainDevice()
    {
        string dev = CreateLoop(8 << 20);
        string queue = $"/sys/class/block/{Path.GetFileName(dev)}/queue/";
        long max = long.Parse(File.ReadAllText(queue + "discard_max_bytes").Trim());
        using (var plain = BlockDeviceStore.Open(dev))
        {
            Assert.Equal(max > 0 ? max : 0, plain.MaxUnmapBytes);
            Assert.False(plain.UnmapReadsZeroes); // a loop device is no dm-thin LV
        }
        using var stated = BlockDeviceStore.Open(dev, new BackingStoreOptions { DiscardZeroesData = true });
        Assert.Equal(stated.SupportsUnmap, stated.UnmapReadsZeroes);
    }
}
