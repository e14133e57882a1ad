using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Linux.Systemd;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Tests.Systemd;

public sealed class JournalReservationAuditTests
{
    private static ItNexus Nexus(int i) =>
        new(new InitiatorPort(ProtocolId.Iscsi, $"iqn.2026-11.test:node{i}"), new TargetPort(ProtocolId.Iscsi, "iqn.2026-11.test:t,t,0x1", 1));

    private static readonly ReservationChange Fence = new(ReservationAction.PreemptAndAbort, Nexus(2), 0xB, 0xA,
        PersistentReservationType.WriteExclusiveRegistrantsOnly, Nexus(2),
        PersistentReservationType.WriteExclusiveRegistrantsOnly, Nexus(1), 7, ReservationResult.Good, [Nexus(1)]);

    [Fact]
    public void OneEntryWithTheVolumeAndTheChangesFields()
    {
        var sent = new List<IReadOnlyList<KeyValuePair<string, string>>>();
        new JournalReservationAudit("/srv/db.img", "0123abcd", f => { sent.Add(f); return true; }).Record(Fence);

        var e = Assert.Single(sent).ToDictionary(f => f.Key, f => f.Value);
        Assert.Equal("/srv/db.img", e["VOLUME"]);
        Assert.Equal("0123abcd", e["VOLUME_SERIAL"]);
        Assert.Equal("5", e["PRIORITY"]);
        Assert.Equal("PREEMPT AND ABORT", e["SERVICE_ACTION"]);
        Assert.Equal(Nexus(2).ToString(), e["NEXUS"]);
        Assert.Equal(Nexus(1).ToString(), e["PREVIOUS_HOLDER"]);
        Assert.Equal("7", e["GENERATION"]);
        Assert.Equal("good", e["RESULT"]);
        Assert.Equal($"/srv/db.img: reservation: {Nexus(2)} preempted and aborted {Nexus(1)} (key 0x000000000000000a); " +
                     $"now Write Exclusive - Registrants Only held by {Nexus(2)}, generation 7", e["MESSAGE"]);
    }

    [Fact]
    public void WithoutJournaldTheSameGoesToTheLogAsOneLine()
    {
        var captured = new StringWriter();
        Log.SetWriter(captured, journalPrefix: true);
        try
        {
            new JournalReservationAudit("/srv/db.img", "0123abcd", _ => false).Record(Fence with { Result = ReservationResult.Conflict });
        }
        finally
        {
            Log.SetWriter(Console.Error, journalPrefix: false);
        }
        // Other tests may log meanwhile: only this volume's line counts.
        var line = Assert.Single(captured.ToString().Split('\n'), l => l.Contains("/srv/db.img: reservation"));
        Assert.StartsWith("<4>/srv/db.img: reservation: ", line); // a refusal is a warning
        Assert.Contains("RESULT=conflict", line);
        Assert.Contains("SERVICE_ACTION=\"PREEMPT AND ABORT\"", line);
        Assert.Contains("VOLUME=/srv/db.img", line);
    }

    [Fact]
    public void SendingWithoutAJournalIsFalseNotACrash()
    {
        // On a build machine journald may or may not run; either answer is fine, an exception is not.
        _ = Journal.Send([new("MESSAGE", "tcmu-shared-volume test entry"), new("PRIORITY", "7")]);
    }
}
