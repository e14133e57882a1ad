using TcmuSharedVolume.Linux.Tcmu;

namespace TcmuSharedVolume.Tests.Tcmu;

/// <summary>UioDevice over a fake sysfs tree and a regular file standing in for /dev/uioN.</summary>
public sealed unsafe class UioDeviceTests : IDisposable
{
    private const long MapSize = 0x11000;
    private readonly string _root = Directory.CreateTempSubdirectory("uio-test").FullName;
    private string Sysfs => Path.Combine(_root, "sys");
    private string Dev => Path.Combine(_root, "dev");

    public UioDeviceTests()
    {
        Directory.CreateDirectory(Dev);
        AddSysfsDevice(3, "tcm-user/1/vol1-a/sharedvol/vol1\n", "0x0000000000011000\n");
        AddSysfsDevice(0, "some other uio\n", "0x0000000000001000\n");
        Directory.CreateDirectory(Path.Combine(Sysfs, "uio7")); // vanished half-way: no files
        Directory.CreateDirectory(Path.Combine(Sysfs, "power"));

        // /dev/uio3: a file holding a valid mailbox (version 2, ring at 128, 64 KiB − 128 ring).
        var image = new byte[MapSize];
        BitConverter.TryWriteBytes(image.AsSpan(0), (ushort)2);
        BitConverter.TryWriteBytes(image.AsSpan(2), (ushort)0xF);
        BitConverter.TryWriteBytes(image.AsSpan(4), 128u);
        BitConverter.TryWriteBytes(image.AsSpan(8), 0x10000u - 128);
        File.WriteAllBytes(Path.Combine(Dev, "uio3"), image);
    }

    private void AddSysfsDevice(int minor, string name, string size)
    {
        string dir = Path.Combine(Sysfs, "uio" + minor);
        Directory.CreateDirectory(Path.Combine(dir, "maps", "map0"));
        File.WriteAllText(Path.Combine(dir, "name"), name);
        File.WriteAllText(Path.Combine(dir, "maps", "map0", "size"), size);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Theory]
    [InlineData("0x0000000040800000\n", 0x40800000L)]
    [InlineData("0x1000", 0x1000L)]
    [InlineData("40800000", 0x40800000L)]
    public void ParsesMapSizeAsHexadecimal(string text, long expected) => Assert.Equal(expected, UioDevice.ParseMapSize(text));

    [Theory]
    [InlineData("")]
    [InlineData("0x")]
    [InlineData("0xZZ")]
    [InlineData("0x0")]
    public void RejectsAMapSizeThatIsNotOne(string text) => Assert.Throws<FormatException>(() => UioDevice.ParseMapSize(text));

    [Fact]
    public void EnumeratesReadableDevicesInMinorOrder()
    {
        var all = UioDevice.Enumerate(Sysfs);
        Assert.Equal([0, 3], all.Select(d => d.Minor));
        Assert.Equal("tcm-user/1/vol1-a/sharedvol/vol1", all[1].Name); // sysfs' newline removed
        Assert.Equal(MapSize, all[1].MapSize);
        Assert.Null(UioDevice.Find("tcm-user/1/vol1-a", Sysfs)); // exact names only
        Assert.Empty(UioDevice.Enumerate(Path.Combine(_root, "missing")));
    }

    [Fact]
    public void OpensAndMapsTheWholeMap_SoARingCanAttach()
    {
        var info = UioDevice.Find("tcm-user/1/vol1-a/sharedvol/vol1", Sysfs);
        Assert.NotNull(info);
        using var device = UioDevice.Open(info.Value, Dev);
        Assert.Equal(MapSize, device.Length);
        Assert.Equal(2, *(ushort*)device.Base);
        Assert.Equal(0xFF, device.Base[MapSize - 1] | 0xFF); // last byte of the map is addressable
        using var ring = new TcmuRing(device.Base, device.Length, device, device.Name);
        Assert.Equal(0x10000u - 128, ring.RingSize);
        device.Kick();
        device.Dispose();
        Assert.Throws<ObjectDisposedException>(() => device.Kick());
    }

    [Fact]
    public void OpeningAMissingDeviceThrowsWithTheErrnoText()
    {
        var e = Assert.Throws<IOException>(() => UioDevice.Open(new UioDeviceInfo(9, "x", 4096), Dev));
        Assert.Contains("uio9", e.Message);
        Assert.Contains("No such file", e.Message);
    }

    [Fact]
    public void MappingLongerThanTheDeviceFileFailsCleanly()
    {
        // A regular file maps beyond its end without error, so check the errno path with a
        // length mmap refuses outright.
        var e = Assert.Throws<IOException>(() => UioDevice.Open(new UioDeviceInfo(3, "x", long.MaxValue & ~0xFFFL), Dev));
        Assert.Contains("mmap", e.Message);
    }
}
