using TcmuSharedVolume.Linux.DBus;

namespace TcmuSharedVolume.Cli;

/// <summary>The daemon's Admin1 D-Bus interface as tsvctl uses it (a fake in tests).</summary>
public interface IDaemonAdmin : IDisposable
{
    string GetStatusJson();
    (bool Ok, string Message) ClearReservations(string volume, bool confirm);
}

/// <summary>Admin1 over sd-bus on the system bus (or TSVCTL_BUS_ADDRESS).</summary>
public sealed class DBusDaemonAdmin : IDaemonAdmin
{
    private readonly AdminClient _client;

    private DBusDaemonAdmin(AdminClient client) => _client = client;

    public static IDaemonAdmin Connect(string? address)
    {
        try
        {
            return new DBusDaemonAdmin(AdminClient.Connect(address));
        }
        catch (DBusException e)
        {
            throw new CliFailure(e.Message);
        }
    }

    public string GetStatusJson() => Wrap(_client.GetStatusJson);

    public (bool Ok, string Message) ClearReservations(string volume, bool confirm) =>
        Wrap(() => _client.ClearReservations(volume, confirm));

    private static T Wrap<T>(Func<T> call)
    {
        try
        {
            return call();
        }
        catch (DBusException e) when (e.ErrorName is "org.freedesktop.DBus.Error.ServiceUnknown" or "org.freedesktop.DBus.Error.NameHasNoOwner")
        {
            throw new CliFailure($"tcmu-shared-volume is not running (systemctl start tcmu-shared-volume): {e.Message}");
        }
        catch (DBusException e) when (e.ErrorName is "org.freedesktop.DBus.Error.AccessDenied")
        {
            throw new CliFailure($"permission denied; run as root: {e.Message}");
        }
        catch (DBusException e)
        {
            throw new CliFailure(e.Message);
        }
    }

    public void Dispose() => _client.Dispose();
}
