using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Tests.Volumes;

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class VolumeConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tsv-cfg-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ParsesPathAndEveryOption()
    {
        var c = VolumeConfig.Parse("sharedvol//srv/vols/vol1.img;size=10G;serial=vol1-serial;initiator=iqn.1994-05.com.redhat%3Anode1;" +
                                   "target=iqn.2003-01.org.linux-iscsi.h%3Asn.1,t,0x0002;rtpi=3;preallocate=1;abort_timeout=12;optimized_host=2");
        Assert.Equal("/srv/vols/vol1.img", c.Path);
        Assert.Equal(10L << 30, c.SizeBytes);
        Assert.Equal("vol1-serial", c.Serial);
        Assert.Equal(new InitiatorPort(ProtocolId.Iscsi, "iqn.1994-05.com.redhat:node1"), c.Initiator);
        Assert.Equal("iqn.2003-01.org.linux-iscsi.h:sn.1,t,0x0002", c.TargetPortName);
        Assert.Equal(ProtocolId.Iscsi, c.TargetProtocol);
        Assert.Equal((ushort)3, c.RelativeTargetPortId);
        Assert.True(c.Preallocate);
        Assert.False(c.Direct);
        Assert.Equal(TimeSpan.FromSeconds(12), c.AbortTimeout);
        Assert.Null(VolumeConfig.Parse("sharedvol//srv/x.img").AbortTimeout);
        Assert.Equal(2, c.OptimizedHost);
        Assert.Null(VolumeConfig.Parse("sharedvol//srv/x.img").OptimizedHost); // symmetric active/active
    }

    [Theory]
    [InlineData("sharedvol//srv//a/./b.img", "/srv/a/b.img")]
    [InlineData("sharedvol//srv/a%3Bb.img", "/srv/a;b.img")]
    [InlineData("sharedvol//srv/100%25.img;", "/srv/100%.img")]
    [InlineData("sharedvol//srv/x.img\n", "/srv/x.img")]
    public void NormalisesAndUnescapesThePath(string devConfig, string path) =>
        Assert.Equal(path, VolumeConfig.Parse(devConfig).Path);

    [Theory]
    [InlineData("file//srv/x.img", "must start with sharedvol/")]
    [InlineData("sharedvol/", "no backing path")]
    [InlineData("sharedvol/srv/x.img", "srv/x.img is not an absolute path")]
    [InlineData("sharedvol//srv/../etc/x", "contains '..'")]
    [InlineData("sharedvol//srv/x.img;size=12Q", "size=12Q is not a size: use bytes or K/M/G/T")]
    [InlineData("sharedvol//srv/x.img;size=1000", "not a multiple of 512")]
    [InlineData("sharedvol//srv/x.img;size=99999999999T", "is not a size")]
    [InlineData("sharedvol//srv/x.img;colour=blue", "unknown option 'colour'")]
    [InlineData("sharedvol//srv/x.img;direct", "needs a value")]
    [InlineData("sharedvol//srv/x.img;direct=yes", "direct=yes must be 0 or 1")]
    [InlineData("sharedvol//srv/x.img;discard_zeroes=2", "discard_zeroes=2 must be 0 or 1")]
    [InlineData("sharedvol//srv/x.img;size=1G;size=2G", "given twice")]
    [InlineData("sharedvol//srv/x%3Gy.img", "bad escape '%3G'")]
    [InlineData("sharedvol//srv/x.img%4", "bad escape '%4'")]
    [InlineData("sharedvol//srv/x.img;initiator=node1", "not an initiator port name")]
    [InlineData("sharedvol//srv/x.img;target=iqn.x,t,0xzz", "not a target port name")]
    [InlineData("sharedvol//srv/x.img;rtpi=0", "from 1 to 65535")]
    [InlineData("sharedvol//srv/x.img;serial=has%20space", "printable ASCII")]
    [InlineData("sharedvol//srv/x.img;abort_timeout=0", "from 1 to 25")]
    [InlineData("sharedvol//srv/x.img;abort_timeout=30", "below the initiators' command timeout")]
    [InlineData("sharedvol//srv/x.img;abort_timeout=2.5", "whole seconds")]
    [InlineData("sharedvol//srv/x.img;optimized_host=0", "host_id of the host whose target port group is Active/Optimized, 1 to 63")]
    [InlineData("sharedvol//srv/x.img;optimized_host=64", "1 to 63")]
    [InlineData("sharedvol//srv/x.img;optimized_host=two", "1 to 63")]
    public void RejectsWithAReasonTheUserCanActOn(string devConfig, string expected)
    {
        Assert.False(VolumeConfig.TryParse(devConfig, out var config, out var reason));
        Assert.Null(config);
        Assert.Contains(expected, reason);
        Assert.Throws<FormatException>(() => VolumeConfig.Parse(devConfig));
    }

    [Theory]
    [InlineData("512", 512L)]
    [InlineData("4k", 4096L)]
    [InlineData("3M", 3L << 20)]
    [InlineData("2G", 2L << 30)]
    [InlineData("1T", 1L << 40)]
    public void ParsesSizes(string text, long bytes)
    {
        Assert.True(ConfigString.TryParseSize(text, out var parsed));
        Assert.Equal(bytes, parsed);
    }

    [Theory]
    [InlineData("")]
    [InlineData("G")]
    [InlineData("-1")]
    [InlineData("1.5G")]
    [InlineData("1GB")]
    public void RejectsNonSizes(string text) => Assert.False(ConfigString.TryParseSize(text, out _));

    [Fact]
    public void ExplicitTargetWithoutTpgtGetsTheFirstPortalGroup()
    {
        var c = VolumeConfig.Parse("sharedvol//x.img;target=IQN.2003-01.org.X%3At1");
        Assert.Equal("iqn.2003-01.org.x:t1,t,0x0001", c.TargetPortName);
    }

    [Theory]
    [InlineData("naa.5001405abcdef012", ProtocolId.Sas)]
    [InlineData("fc.21000024ff123456", ProtocolId.FibreChannel)]
    [InlineData("eui.02004567a425678d", ProtocolId.Iscsi)]
    public void InitiatorProtocolFollowsThePrefix(string name, ProtocolId protocol)
    {
        var c = VolumeConfig.Parse($"sharedvol//x.img;initiator={name}");
        Assert.Equal(protocol, c.Initiator!.Protocol);
    }

    [Fact]
    public void EscapeRoundTripsThroughParse()
    {
        const string path = "/srv/odd: name;with%.img";
        var c = VolumeConfig.Parse(VolumeConfig.Prefix + ConfigString.Escape(path) + ";initiator=" + ConfigString.Escape("iqn.2020-01.a:b"));
        Assert.Equal(path, c.Path);
        Assert.Equal("iqn.2020-01.a:b", c.Initiator!.Name);
        Assert.DoesNotContain(':', ConfigString.Escape(path));
    }

    [Fact]
    public void MissingFileWithoutSizeIsRefused()
    {
        var path = Path.Combine(_dir, "x.img");
        var (ok, reason) = VolumeConfig.Parse($"sharedvol/{path}").Validate();
        Assert.False(ok);
        Assert.Equal($"{path} does not exist and no size= was given to create it", reason);
    }

    [Fact]
    public void MissingParentDirectoryIsNamed()
    {
        var parent = Path.Combine(_dir, "nope");
        var (ok, reason) = VolumeConfig.Parse($"sharedvol/{parent}/x.img;size=1M").Validate();
        Assert.False(ok);
        Assert.StartsWith($"parent directory {parent} ", reason);
    }

    [Fact]
    public void SizeCreatesASparseFileOnce()
    {
        var path = Path.Combine(_dir, "new.img");
        var c = VolumeConfig.Parse($"sharedvol/{path};size=64M");
        Assert.Equal((true, (string?)null), c.Validate());
        Assert.Equal((true, (string?)null), c.CreateIfMissing());
        Assert.Equal(64L << 20, new FileInfo(path).Length);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));

        // An existing file keeps its size and its data.
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Equal((true, (string?)null), VolumeConfig.Parse($"sharedvol/{path};size=1G").CreateIfMissing());
        Assert.Equal(3, new FileInfo(path).Length);
    }

    [Fact]
    public void PreallocateAllocatesTheWholeFile()
    {
        var path = Path.Combine(_dir, "pre.img");
        Assert.True(VolumeConfig.Parse($"sharedvol/{path};size=1M;preallocate=1").CreateIfMissing().Ok);
        Assert.Equal(1L << 20, new FileInfo(path).Length);
    }

    [Fact]
    public void DirectoriesCharacterDevicesAndEmptyFilesAreRefused()
    {
        Assert.Contains("is a directory", VolumeConfig.Parse($"sharedvol/{_dir}").Validate().Reason);
        Assert.Equal("/dev/null is not a block device", VolumeConfig.Parse("sharedvol//dev/null").Validate().Reason);
        Assert.Equal("/dev/sdz9 is not a block device (it does not exist)", VolumeConfig.Parse("sharedvol//dev/sdz9").Validate().Reason);
        var empty = Path.Combine(_dir, "empty.img");
        File.WriteAllBytes(empty, []);
        Assert.Contains("is empty", VolumeConfig.Parse($"sharedvol/{empty}").Validate().Reason);
    }

    [Fact]
    public void DirectIsOnlyForBlockDevices()
    {
        var path = Path.Combine(_dir, "f.img");
        File.WriteAllBytes(path, new byte[4096]);
        var (ok, reason) = VolumeConfig.Parse($"sharedvol/{path};direct=1").Validate();
        Assert.False(ok);
        Assert.Contains("direct=1 is only for block devices", reason);
    }

    [Fact]
    public void DiscardZeroesIsOnlyForBlockDevices()
    {
        var path = Path.Combine(_dir, "z.img");
        File.WriteAllBytes(path, new byte[4096]);
        var c = VolumeConfig.Parse($"sharedvol/{path};discard_zeroes=1");
        Assert.True(c.DiscardZeroes);
        Assert.Contains("discard_zeroes=1 is only for block devices", c.Validate().Reason);
        var sys = Directory.CreateDirectory(Path.Combine(_dir, "sys-z", "null")).Parent!.FullName;
        Assert.Equal((true, (string?)null), VolumeConfig.Parse("sharedvol//dev/null;discard_zeroes=1").Validate(sys));
        Assert.False(VolumeConfig.Parse("sharedvol//dev/null").DiscardZeroes);
    }

    [Fact]
    public void ABlockDeviceIsRecognisedThroughSysfsAndRefusesFileOptions()
    {
        // /dev/null stands in for a device node; a fake sysfs lists it as a block device.
        var sys = Directory.CreateDirectory(Path.Combine(_dir, "sys-class-block", "null")).Parent!.FullName;
        var c = VolumeConfig.Parse("sharedvol//dev/null;direct=1");
        Assert.True(c.IsBlockDevice(sys));
        Assert.Equal((true, (string?)null), c.Validate(sys));
        Assert.Contains("size= cannot be used with block device", VolumeConfig.Parse("sharedvol//dev/null;size=1G").Validate(sys).Reason);
    }

    [Fact]
    public void CanonicalPathResolvesSymlinksSoPathsOfOneDiskGroup()
    {
        var real = Directory.CreateDirectory(Path.Combine(_dir, "real")).FullName;
        File.WriteAllBytes(Path.Combine(real, "disk.img"), [0]);
        Directory.CreateSymbolicLink(Path.Combine(_dir, "alias"), "real");
        File.CreateSymbolicLink(Path.Combine(_dir, "link.img"), "alias/disk.img");
        var canonical = VolumeConfig.ResolveCanonicalPath(Path.Combine(real, "disk.img"));
        Assert.Equal(canonical, VolumeConfig.ResolveCanonicalPath(Path.Combine(_dir, "link.img")));
        Assert.Equal(canonical, VolumeConfig.ResolveCanonicalPath(Path.Combine(_dir, "alias", "disk.img")));
        Assert.Equal(Path.Combine(_dir, "missing", "x"), VolumeConfig.ResolveCanonicalPath(Path.Combine(_dir, "missing", "x")));
    }

    [Fact]
    public void OwnershipIsDecidedByTheSubtypePrefix()
    {
        Assert.True(VolumeConfig.IsOurs("sharedvol//srv/x"));
        Assert.False(VolumeConfig.IsOurs("file//srv/x"));
        Assert.False(VolumeConfig.IsOurs("sharedvolume//srv/x"));
        Assert.False(VolumeConfig.IsOurs(null));
    }
}
