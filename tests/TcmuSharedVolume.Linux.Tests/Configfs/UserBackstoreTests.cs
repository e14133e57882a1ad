using TcmuSharedVolume.Linux.Configfs;

namespace TcmuSharedVolume.Tests.Configfs;

public sealed class UserBackstoreTests : IDisposable
{
    private readonly FakeLio _lio = new();
    private readonly TargetConfigfs _cfs;

    public UserBackstoreTests() => _cfs = new TargetConfigfs(_lio.Root, _lio.ModuleParameters);

    public void Dispose() => _lio.Dispose();

    private string Attr(string dir, string name) => File.ReadAllText(Path.Combine(dir, "attrib", name));

    [Fact]
    public void ReadsWhatTheDaemonNeedsAtOpen()
    {
        _lio.Backstore(2, "vol1-a", "sharedvol//srv/my vol.img;size=1G", size: 1L << 30);
        var b = _cfs.Backstore(2, "vol1-a");
        Assert.True(b.Exists);
        Assert.Equal("user_2/vol1-a", b.DisplayName);
        var info = b.ReadInfo()!;
        Assert.True(info.Activated);
        Assert.Equal("sharedvol//srv/my vol.img;size=1G", info.Config);
        Assert.Equal(1L << 30, info.SizeBytes);
        Assert.Equal(128, info.HwMaxSectors);
        Assert.Equal(1024, info.MaxDataAreaMB);
        Assert.Equal(8, info.CmdRingSizeMB);
        Assert.Equal(512, b.HwBlockSize);
        Assert.Equal(1L << 30, b.SizeBytes);
        Assert.Equal("6a2b9c1e-5f00-4e61-9b0a-1c2d3e4f5a6b", b.UnitSerial);
        Assert.Equal("1", b.ReadAttributes()["emulate_pr"]);
    }

    [Fact]
    public void InfoOfADeviceNotYetEnabled()
    {
        var info = BackstoreInfo.Parse("Status: DEACTIVATED  Max Queue Depth: 0  SectorSize: 0  HwMaxSectors: 0\n        Config: NULL Size: 0 MaxDataAreaMB: 1024 DataPagesPerBlk: 1 CmdRingSizeMB: 8\n");
        Assert.False(info.Activated);
        Assert.Null(info.Config);
        Assert.Equal(0, info.SizeBytes);
    }

    [Fact]
    public void PrPassthroughWritesPgrSupportZero()
    {
        var dir = _lio.Backstore(1, "v");
        Assert.Equal((true, (string?)null), _cfs.Backstore(1, "v").EnablePrPassthrough());
        Assert.Equal("0", Attr(dir, "pgr_support"));
    }

    [Fact]
    public void PrPassthroughRefusesWhenEmulatePrIsOff()
    {
        var dir = _lio.Backstore(1, "v");
        File.WriteAllText(Path.Combine(dir, "attrib", "emulate_pr"), "0\n");
        var (ok, reason) = _cfs.Backstore(1, "v").EnablePrPassthrough();
        Assert.False(ok);
        Assert.Equal("attrib/emulate_pr on user_1/v is 0: the kernel rejects PERSISTENT RESERVE before it reaches the daemon; set it to 1", reason);
    }

    [Fact]
    public void PrPassthroughRefusesOnAKernelWithoutPgrSupport()
    {
        var dir = _lio.Backstore(1, "v");
        File.Delete(Path.Combine(dir, "attrib", "pgr_support"));
        var (ok, reason) = _cfs.Backstore(1, "v").EnablePrPassthrough();
        Assert.False(ok);
        Assert.Contains("no attrib/pgr_support", reason);
        Assert.False(_cfs.Backstore(9, "missing").EnablePrPassthrough().Ok);
    }

    [Fact]
    public void AWriteTheKernelRefusesSurfacesAsIOException()
    {
        var dir = _lio.Backstore(1, "v");
        // Opening a directory for writing fails like a refused configfs store does.
        var attr = Path.Combine(dir, "attrib", "pgr_support");
        File.Delete(attr);
        Directory.CreateDirectory(attr);
        var b = _cfs.Backstore(1, "v");
        Assert.Throws<IOException>(() => b.WriteAttribute("pgr_support", "0"));
    }

    [Fact]
    public void TmrNotificationIsSwitchedOn()
    {
        var dir = _lio.Backstore(1, "v");
        Assert.True(_cfs.Backstore(1, "v").EnableTmrNotification().Ok);
        Assert.Equal("1", Attr(dir, "tmr_notification"));
        File.Delete(Path.Combine(dir, "attrib", "tmr_notification"));
        Assert.Contains("no attrib/tmr_notification", _cfs.Backstore(1, "v").EnableTmrNotification().Reason);
    }

    [Fact]
    public void RestartRecipeBlocksResetsAndUnblocks()
    {
        var dir = _lio.Backstore(1, "v");
        var b = _cfs.Backstore(1, "v");
        Assert.False(b.IsBlocked);
        Assert.True(b.BlockAndResetRing().Ok);
        Assert.Equal("1", File.ReadAllText(Path.Combine(dir, "action", "block_dev")));
        Assert.Equal("1", File.ReadAllText(Path.Combine(dir, "action", "reset_ring")));
        b.BlockDevice(false);
        Assert.Equal("0", File.ReadAllText(Path.Combine(dir, "action", "block_dev")));
        b.ResetRing(checkCondition: true);
        Assert.Equal("2", File.ReadAllText(Path.Combine(dir, "action", "reset_ring")));
    }

    [Fact]
    public void RestartRecipeOnAKernelWithoutActionsSaysSo()
    {
        var dir = _lio.Backstore(1, "v");
        Directory.Delete(Path.Combine(dir, "action"), recursive: true);
        var (ok, reason) = _cfs.Backstore(1, "v").BlockAndResetRing();
        Assert.False(ok);
        Assert.Contains("has no action/block_dev", reason);
    }

    [Fact]
    public void NetlinkModuleParametersReleaseStuckRequests()
    {
        Assert.False(_cfs.IsNetlinkBlocked);
        Assert.True(_cfs.ReleaseStuckNetlinkRequests().Ok);
        Assert.Equal("1", File.ReadAllText(Path.Combine(_lio.ModuleParameters, "reset_netlink")));
        Assert.Equal("0", File.ReadAllText(Path.Combine(_lio.ModuleParameters, "block_netlink")));
        var missing = new TargetConfigfs(_lio.Root, Path.Combine(_lio.Base, "nope"));
        Assert.Contains("target_core_user is not loaded", missing.ReleaseStuckNetlinkRequests().Reason);
    }
}
