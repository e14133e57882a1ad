using TcmuSharedVolume.Reservations;

namespace TcmuSharedVolume.Cli.Tests;

/// <summary>tsvctl pr history: the journalctl call and the parsing of its JSON output.</summary>
public sealed class HistoryTests : IDisposable
{
    private readonly Sandbox _s = new();

    public void Dispose() => _s.Dispose();

    private const string Node1 = "iqn.2026-11.org.example:node1 -> iqn.2026-11.org.example:db,t,0x1";
    private const string Node2 = "iqn.2026-11.org.example:node2 -> iqn.2026-11.org.example:db,t,0x1";

    // What journalctl -o json prints for two of the daemon's entries (trimmed to the fields that
    // matter plus some of journald's own), then a line journalctl adds that is not an entry.
    private static readonly string Canned = string.Join('\n',
        $$"""{"__REALTIME_TIMESTAMP":"1764910800000000","_PID":"812","SYSLOG_IDENTIFIER":"tcmu-shared-volume","MESSAGE_ID":"{{ReservationChange.MessageId}}","VOLUME":"/srv/db.img","SERVICE_ACTION":"REGISTER","NEXUS":"{{Node1}}","KEY":"0x0000000000000000","TYPE":"none","PREVIOUS_HOLDER":"none","GENERATION":"1","RESULT":"good","REMOVED":"none","MESSAGE":"/srv/db.img: reservation: ..."}""",
        $$"""{"__REALTIME_TIMESTAMP":"1764910861500000","SYSLOG_IDENTIFIER":"tcmu-shared-volume","MESSAGE_ID":"{{ReservationChange.MessageId}}","VOLUME":"/srv/db.img","SERVICE_ACTION":"PREEMPT AND ABORT","NEXUS":"{{Node2}}","KEY":"0x000000000000beef","TYPE":"Write Exclusive - Registrants Only","PREVIOUS_HOLDER":"{{Node1}}","GENERATION":"4","RESULT":"good","REMOVED":[105,113,110]}""",
        "-- No entries --",
        "");

    [Fact]
    public void AsksJournalctlForOurEntriesOfTheVolumeByPathOrSerial()
    {
        _s.Journal.Output = Canned;

        Assert.Equal(0, _s.Run("pr", "history", "/srv/./db.img"));

        var args = Assert.Single(_s.Journal.Calls);
        string id = "MESSAGE_ID=" + ReservationChange.MessageId;
        Assert.Equal(["--no-pager", "-o", "json", id, "SYSLOG_IDENTIFIER=tcmu-shared-volume", "VOLUME=/srv/db.img",
            "+", id, "SYSLOG_IDENTIFIER=tcmu-shared-volume", "VOLUME_SERIAL=/srv/db.img"], args);
    }

    [Fact]
    public void PrintsOneRowPerChangeWithBothNexusesOfAPreemption()
    {
        _s.Journal.Output = Canned;

        Assert.Equal(0, _s.Run("pr", "history", "/srv/db.img"));

        var lines = _s.Out.ToString().TrimEnd().Split('\n');
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("TIME (UTC)", lines[0]);
        Assert.Contains("SERVICE ACTION", lines[0]);
        Assert.StartsWith("2025-12-05 05:00:00  REGISTER", lines[1]);
        Assert.StartsWith("2025-12-05 05:01:01  PREEMPT AND ABORT", lines[2]);
        Assert.Contains(Node2, lines[2]);
        Assert.Contains(Node1, lines[2]);
        Assert.Contains("0x000000000000beef", lines[2]);
        Assert.Contains("Write Exclusive - Registrants Only", lines[2]);
        Assert.Matches(@"  4 +good +iqn$", lines[2]); // a field journald kept as bytes is decoded
    }

    [Fact]
    public void ParsesEveryField()
    {
        var e = History.Parse(Canned)[1];
        Assert.Equal(new DateTimeOffset(2025, 12, 5, 5, 1, 1, 500, TimeSpan.Zero), e.Time);
        Assert.Equal(("PREEMPT AND ABORT", Node2, "0x000000000000beef", "4", "good", Node1),
            (e.ServiceAction, e.Nexus, e.Key, e.Generation, e.Result, e.PreviousHolder));
    }

    [Fact]
    public void AFieldRepeatedInOneEntryShowsItsLastValue()
    {
        var e = Assert.Single(History.Parse("""{"__REALTIME_TIMESTAMP":"0","RESULT":["good","conflict"]}"""));
        Assert.Equal("conflict", e.Result);
        Assert.Equal("-", e.Nexus);
    }

    [Fact]
    public void NoEntriesSaysSoAndHowToSeeMore()
    {
        _s.Journal.Output = "-- No entries --\n";

        Assert.Equal(0, _s.Run("pr", "history", "0123abcd"));

        Assert.Contains("no reservation changes of 0123abcd", _s.Out.ToString());
        Assert.Contains("systemd-journal", _s.Out.ToString());
    }

    [Fact]
    public void BrokenJournalOutputIsAFailureNotACrash()
    {
        _s.Journal.Output = "{\"SERVICE_ACTION\": \n";

        Assert.Equal(1, _s.Run("pr", "history", "/srv/db.img"));

        Assert.Contains("not JSON", _s.ErrorLine());
    }
}
