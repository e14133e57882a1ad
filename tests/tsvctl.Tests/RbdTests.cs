namespace TcmuSharedVolume.Cli.Tests;

/// <summary>
/// An RBD image as the volume of export, unexport and resize: <c>rbd/POOL/IMAGE[;ceph_conf=…][;ceph_id=…]</c>,
/// the config string's own syntax, so that every host exports it with the same string
/// (docs/operations.md §10). Its size comes from librbd (here a fake).
/// </summary>
public sealed class RbdTests : IDisposable
{
    private const string Target = "iqn.2026-12.org.example:db-h1";
    private const string Node1 = "iqn.2026-12.org.example:node1";
    private const string Node2 = "iqn.2026-12.org.example:node2";
    private const string Image = "rbd/rbd/db;ceph_conf=/etc/ceph/ceph.conf;ceph_id=tsv";
    private readonly Sandbox _s = new();

    public RbdTests() => _s.RbdImages["rbd/db"] = 512 << 20;

    public void Dispose() => _s.Dispose();

    [Fact]
    public void ExportIscsiMakesOneBackstorePerInitiatorWithTheImageSizeAndTheCephOptions()
    {
        Assert.Equal(0, _s.Run("export", "iscsi", "--no-auth", "--volume", Image, "--target", Target,
            "--initiator", Node1, "--initiator", Node2, "--portal", "10.99.0.1:3260"));

        Assert.Equal($"/backstores/user:sharedvol create name=db-1 size={512 << 20} cfgstring={Image};initiator=iqn.2026-12.org.example%3Anode1",
            _s.Targetcli.Commands[0]);
        Assert.Equal($"/backstores/user:sharedvol create name=db-2 size={512 << 20} cfgstring={Image};initiator=iqn.2026-12.org.example%3Anode2",
            _s.Targetcli.Commands[1]);
        Assert.Contains($"/iscsi/{Target}/tpg1/portals create ip_address=10.99.0.1 ip_port=3260", _s.Targetcli.Commands);
        Assert.Contains($"exported {Image} on {Target} to 2 initiator(s)", _s.Out.ToString());
    }

    [Theory]
    [InlineData("rbd/rbd/db", "rbd/rbd/db")]
    [InlineData("rbd/rbd/db;ceph_id=client.tsv", "rbd/rbd/db;ceph_id=tsv")]
    [InlineData("rbd/rbd/db; ceph_id=admin ;ceph_conf=/etc/ceph/c.conf", "rbd/rbd/db;ceph_conf=/etc/ceph/c.conf")]
    public void TheVolumeIsSpelledOneWay(string given, string canonical) => Assert.Equal(canonical, Volumes.Canonical(given));

    [Theory]
    [InlineData("rbd/rbd", "is not an RBD image: write sharedvol/rbd/POOL/IMAGE")]
    [InlineData("rbd/rbd/d b", "is not an image name")]
    [InlineData("rbd/rbd/db;serial=abc", "'serial=abc' cannot follow rbd/POOL/IMAGE here, only ceph_conf= and ceph_id=")]
    [InlineData("rbd/rbd/db;ceph_conf=ceph.conf", "must be the absolute path of a ceph.conf")]
    [InlineData("rbd/rbd/db;ceph_conf=/etc/ceph/a b.conf", "contains whitespace")]
    public void ABadImageSpecIsAUsageErrorAndChangesNothing(string volume, string message)
    {
        Assert.Equal(2, _s.Run("export", "iscsi", "--no-auth", "--volume", volume, "--target", Target, "--initiator", Node1));
        Assert.Contains(message, _s.ErrorLine());
        Assert.Empty(_s.Targetcli.Commands);
    }

    [Fact]
    public void AnImageLibrbdCannotOpenFailsBeforeTargetcliRuns()
    {
        Assert.Equal(1, _s.Run("export", "iscsi", "--no-auth", "--volume", "rbd/rbd/missing", "--target", Target, "--initiator", Node1));
        Assert.Contains("cannot open RBD image rbd/missing", _s.ErrorLine());
        Assert.Empty(_s.Targetcli.Commands);
    }

    [Fact]
    public void UnexportFindsTheBackstoresWithOrWithoutTheCephOptions()
    {
        _s.Backstore(1, "db-1", $"sharedvol/{Image};initiator=iqn.2026-12.org.example%3Anode1");
        _s.Backstore(1, "other-1", "sharedvol/rbd/rbd/other;ceph_id=tsv");
        Assert.Equal(0, _s.Run("unexport", "--volume", "rbd/rbd/db"));
        Assert.Contains("/backstores/user:sharedvol delete db-1", _s.Targetcli.Commands);
        Assert.DoesNotContain("/backstores/user:sharedvol delete other-1", _s.Targetcli.Commands);
    }

    [Fact]
    public void ResizeWritesTheNewSizeIntoEveryBackstoreOfTheImageOnThisHost()
    {
        _s.Backstore(1, "db-1", $"sharedvol/{Image};initiator=iqn.2026-12.org.example%3Anode1");
        _s.Backstore(1, "db-2", $"sharedvol/{Image};initiator=iqn.2026-12.org.example%3Anode2");
        Assert.Equal(0, _s.Run("volume", "resize", Image, "--size", "1G"));
        Assert.Equal((1L << 30).ToString(), _s.DevSize(1, "db-1"));
        Assert.Equal((1L << 30).ToString(), _s.DevSize(1, "db-2"));
        Assert.Contains("2 path(s) told: db-1, db-2", _s.Out.ToString());
    }

    [Fact]
    public void ResizeNeverShrinksAnImageAndLeavesOneNotServedHereToRbd()
    {
        _s.Backstore(1, "db-1", $"sharedvol/{Image}");
        Assert.Equal(1, _s.Run("volume", "resize", Image, "--size", "256M"));
        Assert.Contains($"rbd/db has {512 << 20} bytes; shrinking to {256 << 20} is refused", _s.ErrorLine());
        Assert.Equal("", _s.DevSize(1, "db-1"));

        _s.RbdImages["rbd/cold"] = 1 << 20;
        _s.Err.GetStringBuilder().Clear();
        Assert.Equal(1, _s.Run("volume", "resize", "rbd/rbd/cold", "--size", "2M"));
        Assert.Contains("rbd/cold is not exported on this host: grow it with rbd resize", _s.ErrorLine());
    }

    [Fact]
    public void DeleteLeavesTheImageToCeph()
    {
        Assert.Equal(1, _s.Run("volume", "delete", "rbd/rbd/db", "--yes"));
        Assert.Contains("rbd/db is an RBD image, which tsvctl does not delete: unexport it on every host, then rbd rm", _s.ErrorLine());
    }
}
