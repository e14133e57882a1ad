using TcmuSharedVolume.Backends;

namespace TcmuSharedVolume.Tests.Backends;

/// <summary>The host records of a shared table's object (xattr tsv.host.&lt;client id&gt;), as written and read back.</summary>
public class RbdHostRecordTests
{
    [Fact]
    public void ARecordSurvivesItsStoredForm()
    {
        var since = new DateTimeOffset(2026, 12, 5, 8, 33, 21, TimeSpan.Zero);
        var record = new RbdHostRecord(4171, "[v2:10.0.0.1:0/123,v1:10.0.0.1:0/123]", 2, "gw two", since);
        string text = record.Format();
        Assert.Equal("host_id=2 hostname=gw_two since=2026-12-05T08:33:21Z addr=[v2:10.0.0.1:0/123,v1:10.0.0.1:0/123]", text);
        Assert.Equal(record with { HostName = "gw_two" }, RbdHostRecord.Parse(4171, text));
        Assert.Equal("host 2 (gw_two), client.4171", RbdHostRecord.Parse(4171, text).ToString());
    }

    [Fact]
    public void TheBareAddressOfTheFirstVersionIsStillARecord()
    {
        var record = RbdHostRecord.Parse(17, "127.0.0.1:0/3011458327\n");
        Assert.Equal(new RbdHostRecord(17, "127.0.0.1:0/3011458327", null, null, null), record);
        Assert.Equal("host, client.17", record.ToString());
    }

    [Fact]
    public void UnknownOrBrokenFieldsAreLeftOut()
    {
        var record = RbdHostRecord.Parse(5, "host_id=x colour=blue since=yesterday addr=127.0.0.1:0/9");
        Assert.Equal(new RbdHostRecord(5, "127.0.0.1:0/9", null, null, null), record);
    }
}
