using System.Globalization;
using System.Text;

namespace TcmuSharedVolume.Backends;

/// <summary>
/// What a host serving an RBD volume writes into the shared table's object when it starts
/// watching it (xattr <c>tsv.host.&lt;client id&gt;</c>): the address another host blocklists it
/// by, and who it is for the administrator (host_id, host name, since when). One record per RADOS
/// client: a host that restarts or rejoins is a new client with a new record.
/// </summary>
/// <param name="ClientId">The RADOS client's global id (<c>client.N</c>), part of the xattr's name.</param>
/// <param name="Address">rados_getaddrs of the client, "[v2:ip:port/nonce,v1:...]".</param>
/// <param name="HostId">host_id of the daemon's configuration; null in a record that does not say.</param>
public sealed record RbdHostRecord(ulong ClientId, string Address, int? HostId, string? HostName, DateTimeOffset? Since)
{
    /// <summary>"host_id=1 hostname=gw1 since=2026-12-05T08:33:21Z addr=[v2:…]": the address last, as it was the whole value once.</summary>
    public string Format()
    {
        var sb = new StringBuilder();
        if (HostId is { } id) sb.Append("host_id=").Append(id.ToString(CultureInfo.InvariantCulture)).Append(' ');
        if (HostName is { Length: > 0 } name) sb.Append("hostname=").Append(name.Replace(' ', '_')).Append(' ');
        if (Since is { } since) sb.Append("since=").Append(since.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture)).Append(' ');
        return sb.Append("addr=").Append(Address).ToString();
    }

    /// <summary>A record as stored; a value without <c>addr=</c> is the bare address that the first version wrote.</summary>
    public static RbdHostRecord Parse(ulong clientId, string text)
    {
        text = text.Trim();
        if (!text.Contains("addr=", StringComparison.Ordinal)) return new RbdHostRecord(clientId, text, null, null, null);
        string address = "";
        int? hostId = null;
        string? hostName = null;
        DateTimeOffset? since = null;
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = word.IndexOf('=');
            if (eq < 0) continue;
            var value = word[(eq + 1)..];
            switch (word[..eq])
            {
                case "addr": address = value; break;
                case "host_id" when int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int id): hostId = id; break;
                case "hostname": hostName = value; break;
                case "since" when DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t): since = t; break;
            }
        }
        return new RbdHostRecord(clientId, address, hostId, hostName, since);
    }

    /// <summary>"host 1 (gw1), client.4171" as logs and tsvctl name it.</summary>
    public override string ToString() =>
        (HostId is { } id ? $"host {id}" : "host") + (HostName is { Length: > 0 } n ? $" ({n})" : "") + $", client.{ClientId}";
}

/// <summary>Whether a recorded host still serves the volume, from a ping of the table object's watchers.</summary>
public enum RbdHostState
{
    /// <summary>Watches the table and answered the ping.</summary>
    Serving,
    /// <summary>Still watches the table but did not answer in time (busy, or dead and not yet
    /// timed out by the OSD): the next change waits for it, then fences it.</summary>
    NotAnswering,
    /// <summary>No longer watches the table: a client that stopped, or was fenced and replaced by
    /// a new one. Its record is stale; nothing uses it (a host is fenced only while it watches).</summary>
    Gone,
}

/// <summary>One host of an RBD volume as <c>tsvctl status</c> shows it. A watcher without a record
/// (not a host of this product, e.g. <c>rados watch</c>) has an empty <see cref="RbdHostRecord.Address"/>.</summary>
public sealed record RbdHost(RbdHostRecord Record, RbdHostState State, bool IsThisHost);
