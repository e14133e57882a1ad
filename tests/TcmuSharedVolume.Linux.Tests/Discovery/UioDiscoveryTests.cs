using TcmuSharedVolume.Linux.Discovery;

namespace TcmuSharedVolume.Tests.Discovery;

public sealed class UioDiscoveryTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tsv-uio-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void Uio(int index, string name, string? dev = null, string size = "0x0000000040800000")
    {
        var dir = Directory.CreateDirectory(Path.Combine(_root, $"uio{index}")).FullName;
        File.WriteAllText(Path.Combine(dir, "name"), name + "\n");
        File.WriteAllText(Path.Combine(dir, "version"), "2\n");
        if (dev is not null) File.WriteAllText(Path.Combine(dir, "dev"), dev + "\n");
        Directory.CreateDirectory(Path.Combine(dir, "maps", "map0"));
        File.WriteAllText(Path.Combine(dir, "maps", "map0", "size"), size + "\n");
        File.WriteAllText(Path.Combine(dir, "maps", "map0", "name"), "tcm-user command & data buffer\n");
    }

    [Fact]
    public void FindsOnlyOurTcmuDevices()
    {
        Uio(0, "tcm-user/1/vol1-a/sharedvol//srv/vol1.img;size=10G", dev: "243:0");
        Uio(1, "tcm-user/2/other/file//srv/other.img", dev: "243:1");
        Uio(2, "uio_pci_generic", dev: "243:2");
        Uio(3, "tcm-user/4/noconfig", dev: "243:3");
        Uio(10, "tcm-user/3/vol1-b/sharedvol//srv/vol1.img", dev: "243:10", size: "0x0000000000900000");

        var found = new UioDiscovery(_root).Scan();

        Assert.Equal(2, found.Count);
        Assert.Equal(new UioDevice(0, 0, 1, "vol1-a", "sharedvol//srv/vol1.img;size=10G", 0x40800000), found[0]);
        Assert.Equal(new UioDevice(10, 10, 3, "vol1-b", "sharedvol//srv/vol1.img", 0x900000), found[1]);
        Assert.Equal("/dev/uio10", found[1].DevicePath);
        Assert.Equal("tcm-user/3/vol1-b/sharedvol//srv/vol1.img", found[1].UioName);
    }

    [Fact]
    public void MinorComesFromTheDevFile()
    {
        Uio(4, "tcm-user/1/v/sharedvol//x", dev: "243:7");
        Uio(5, "tcm-user/1/w/sharedvol//y");
        var d = new UioDiscovery(_root);
        Assert.Equal(7, d.Find(4)!.Minor);
        Assert.Equal(5, d.Find(5)!.Minor); // no dev file: the index is the minor
        Assert.Equal("v", d.FindByMinor(7)!.DeviceName);
        Assert.Null(d.Find(99));
    }

    [Fact]
    public void NoUioClassMeansNoDevices() =>
        Assert.Empty(new UioDiscovery(Path.Combine(_root, "absent")).Scan());

    [Theory]
    [InlineData("0x0000000040800000", 0x40800000L)]
    [InlineData("0x1000", 0x1000L)]
    [InlineData("junk", 0L)]
    public void ParsesSysfsMapSizes(string text, long expected) => Assert.Equal(expected, UioDiscovery.ParseHex(text));
}
