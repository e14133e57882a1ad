using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Tests.Volumes;

/// <summary>The RBD form of the config string: <c>sharedvol/rbd/POOL/IMAGE[;ceph_conf=...][;ceph_id=...]</c>.</summary>
public sealed class RbdVolumeConfigTests
{
    [Fact]
    public void ParsesPoolImageAndTheCephClient()
    {
        var c = VolumeConfig.Parse("sharedvol/rbd/rbd/vol-1;ceph_conf=/etc/ceph/ceph.conf;ceph_id=gateway1;serial=abc\n");
        Assert.NotNull(c.Rbd);
        Assert.Equal("rbd", c.Rbd.Pool);
        Assert.Equal("vol-1", c.Rbd.Image);
        Assert.Equal("/etc/ceph/ceph.conf", c.Rbd.CephConf);
        Assert.Equal("gateway1", c.Rbd.ClientId);
        Assert.Equal("abc", c.Serial); // the options of every volume still apply
        Assert.Equal("rbd/rbd/vol-1", c.Path);
        Assert.Equal("rbd/rbd/vol-1", c.ResolveCanonicalPath());
    }

    [Fact]
    public void DefaultsToLibradosSearchAndClientAdmin()
    {
        var c = VolumeConfig.Parse("sharedvol/rbd/pool.a/img_2");
        Assert.Null(c.Rbd!.CephConf);
        Assert.Equal("admin", c.Rbd.ClientId);
        Assert.Equal((true, null), c.Validate());
        Assert.Equal((true, null), c.CreateIfMissing());
    }

    [Fact]
    public void AcceptsClientDotPrefixAndEscapes()
    {
        var c = VolumeConfig.Parse("sharedvol/rbd/rbd/img;ceph_id=client.gw;ceph_conf=/srv/my%20ceph.conf");
        Assert.Equal("gw", c.Rbd!.ClientId);
        Assert.Equal("/srv/my ceph.conf", c.Rbd.CephConf);
    }

    [Fact]
    public void FilePathsAreNotRbd()
    {
        var c = VolumeConfig.Parse("sharedvol//rbd/pool/image;size=1M");
        Assert.Null(c.Rbd);
        Assert.Equal("/rbd/pool/image", c.Path);
        Assert.False(VolumeConfig.TryParse("sharedvol//srv/a.img;ceph_id=admin", out _, out var reason));
        Assert.Contains("unknown option 'ceph_id'", reason);
    }

    [Theory]
    [InlineData("sharedvol/rbd/pool", "is not an RBD image")]
    [InlineData("sharedvol/rbd/pool/", "is not an image name")]
    [InlineData("sharedvol/rbd/pool/ns/image", "is not an RBD image")]
    [InlineData("sharedvol/rbd//image", "is not a pool name")]
    [InlineData("sharedvol/rbd/po ol/image", "is not a pool name")]
    [InlineData("sharedvol/rbd/pool/im%ZZ", "bad escape")]
    [InlineData("sharedvol/rbd/pool/image;ceph_conf=ceph.conf", "absolute path")]
    [InlineData("sharedvol/rbd/pool/image;ceph_conf", "needs a value")]
    [InlineData("sharedvol/rbd/pool/image;ceph_id=a;ceph_id=b", "given twice")]
    [InlineData("sharedvol/rbd/pool/image;ceph_id=a b", "is not a Ceph client id")]
    [InlineData("sharedvol/rbd/pool/image;colour=blue", "unknown option 'colour'")]
    public void RefusesWithAReason(string config, string expected)
    {
        Assert.False(VolumeConfig.TryParse(config, out _, out var reason));
        Assert.Contains(expected, reason);
    }

    [Theory]
    [InlineData("sharedvol/rbd/pool/image;size=1G", "size= cannot be used with RBD image pool/image")]
    [InlineData("sharedvol/rbd/pool/image;direct=1", "direct=1 is only for block devices")]
    [InlineData("sharedvol/rbd/pool/image;preallocate=1", "preallocate=1 is only for files")]
    [InlineData("sharedvol/rbd/pool/image;ceph_conf=/nonexistent/ceph.conf", "ceph_conf=/nonexistent/ceph.conf does not exist")]
    public void ValidateRefusesFileOptions(string config, string expected)
    {
        var (ok, reason) = VolumeConfig.Parse(config).Validate();
        Assert.False(ok);
        Assert.NotNull(reason);
        Assert.StartsWith(expected, reason);
    }
}
