using System.Runtime.InteropServices;
using TcmuSharedVolume.Interop;

namespace TcmuSharedVolume.Linux.DBus;

/// <summary>
/// The client side of <see cref="TcmuService"/>, for tsvctl: calls on the daemon's bus name,
/// through sd-bus (no busctl). Calling the name starts the daemon by D-Bus activation if it is
/// installed and not running.
/// </summary>
public sealed unsafe class AdminClient : IDisposable
{
    private static readonly ulong CallTimeoutUsec = (ulong)TimeSpan.FromSeconds(30).TotalMicroseconds;
    private nint _bus;

    private AdminClient(nint bus) => _bus = bus;

    /// <summary>Connects to the system bus, or to a private bus at <paramref name="address"/>.</summary>
    public static AdminClient Connect(string? address = null) => new(SdBus.Open(address));

    public string GetStatusJson()
    {
        string result = "";
        Call(TcmuService.AdminInterface, "GetStatusJson", _ => { }, reply => result = SdBus.ReadString(reply));
        return result;
    }

    public (bool Ok, string Message) ClearReservations(string volume, bool confirm)
    {
        (bool, string) result = default;
        Call(TcmuService.AdminInterface, "ClearReservations",
            m => { SdBus.AppendString(m, volume); SdBus.AppendBool(m, confirm); },
            reply => result = (SdBus.ReadBool(reply), SdBus.ReadString(reply)));
        return result;
    }

    public (bool Ok, string Message) CheckConfig(string config)
    {
        (bool, string) result = default;
        Call(TcmuService.HandlerInterface, "CheckConfig", m => SdBus.AppendString(m, config),
            reply => result = (SdBus.ReadBool(reply), SdBus.ReadString(reply)));
        return result;
    }

    public (int Ret, string Message) ChangeMedium(string name, ulong size, string config)
    {
        (int, string) result = default;
        Call(TcmuService.HandlerInterface, "ChangeMedium",
            m => { SdBus.AppendString(m, name); SdBus.AppendUInt64(m, size); SdBus.AppendString(m, config); },
            reply => result = (SdBus.ReadInt32(reply), SdBus.ReadString(reply)));
        return result;
    }

    private void Call(string iface, string member, Action<nint> append, Action<nint> read)
    {
        ObjectDisposedException.ThrowIf(_bus == 0, this);
        nint call = 0, reply = 0;
        var error = new SdBusError();
        try
        {
            SdBus.Check(LibSystemd.sd_bus_message_new_method_call(_bus, &call, TcmuService.BusName, TcmuService.HandlerPath, iface, member),
                $"{member}: new method call");
            append(call);
            int r = LibSystemd.sd_bus_call(_bus, call, CallTimeoutUsec, &error, &reply);
            if (r < 0)
            {
                string? name = Marshal.PtrToStringUTF8((nint)error.Name);
                string text = Marshal.PtrToStringUTF8((nint)error.Message) ?? Marshal.GetPInvokeErrorMessage(-r);
                throw new DBusException($"{member}: {text}", -r, name);
            }
            read(reply);
        }
        finally
        {
            LibSystemd.sd_bus_error_free(&error);
            if (reply != 0) LibSystemd.sd_bus_message_unref(reply);
            if (call != 0) LibSystemd.sd_bus_message_unref(call);
        }
    }

    public void Dispose()
    {
        if (_bus != 0) LibSystemd.sd_bus_flush_close_unref(_bus);
        _bus = 0;
    }
}
