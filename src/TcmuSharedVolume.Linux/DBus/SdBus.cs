using System.Runtime.InteropServices;
using TcmuSharedVolume.Interop;

namespace TcmuSharedVolume.Linux.DBus;

/// <summary>A failed sd-bus call: negative errno from libsystemd, or a D-Bus error reply.</summary>
public sealed class DBusException : Exception
{
    public DBusException(string message, int errno = 0, string? errorName = null) : base(message)
    {
        Errno = errno;
        ErrorName = errorName;
    }

    /// <summary>Positive errno, 0 when not known.</summary>
    public int Errno { get; }

    /// <summary>D-Bus error name of a remote error (e.g. org.freedesktop.DBus.Error.AccessDenied).</summary>
    public string? ErrorName { get; }
}

/// <summary>Connecting to a bus and the small marshalling helpers both ends share.</summary>
internal static unsafe class SdBus
{
    internal const int EPERM = 1;
    internal const int EINTR = 4;
    internal const int EACCES = 13;
    internal const int EEXIST = 17;
    internal const int EOPNOTSUPP = 95;

    /// <summary>
    /// Opens the system bus, or a private bus at <paramref name="address"/> (tests run their own
    /// dbus-daemon; sd_bus_open_system would also honour DBUS_SYSTEM_BUS_ADDRESS, but .NET does
    /// not change the native environment that libsystemd reads, so the address is passed explicitly).
    /// </summary>
    public static nint Open(string? address)
    {
        nint bus;
        int r;
        if (address is null)
        {
            r = LibSystemd.sd_bus_open_system(&bus);
            Check(r, "cannot connect to the D-Bus system bus (is dbus running?)");
            return bus;
        }

        Check(LibSystemd.sd_bus_new(&bus), "sd_bus_new");
        r = LibSystemd.sd_bus_set_address(bus, address);
        if (r >= 0) r = LibSystemd.sd_bus_set_bus_client(bus, 1);
        if (r >= 0) r = LibSystemd.sd_bus_start(bus);
        if (r < 0)
        {
            LibSystemd.sd_bus_flush_close_unref(bus);
            Check(r, $"cannot connect to D-Bus at {address}");
        }
        return bus;
    }

    public static void Check(int r, string what)
    {
        if (r < 0) throw new DBusException($"{what}: {Marshal.GetPInvokeErrorMessage(-r)}", -r);
    }

    public static string ReadString(nint message)
    {
        byte* p = null;
        Check(LibSystemd.sd_bus_message_read_basic(message, LibSystemd.SD_BUS_TYPE_STRING, &p), "read string");
        return Marshal.PtrToStringUTF8((nint)p) ?? "";
    }

    public static bool ReadBool(nint message)
    {
        int b = 0;
        Check(LibSystemd.sd_bus_message_read_basic(message, LibSystemd.SD_BUS_TYPE_BOOLEAN, &b), "read boolean");
        return b != 0;
    }

    public static ulong ReadUInt64(nint message)
    {
        ulong v = 0;
        Check(LibSystemd.sd_bus_message_read_basic(message, LibSystemd.SD_BUS_TYPE_UINT64, &v), "read uint64");
        return v;
    }

    public static int ReadInt32(nint message)
    {
        int v = 0;
        Check(LibSystemd.sd_bus_message_read_basic(message, LibSystemd.SD_BUS_TYPE_INT32, &v), "read int32");
        return v;
    }

    public static void AppendString(nint message, string value)
    {
        var p = Marshal.StringToCoTaskMemUTF8(value);
        try
        {
            // For string types append_basic takes the char* itself.
            Check(LibSystemd.sd_bus_message_append_basic(message, LibSystemd.SD_BUS_TYPE_STRING, (void*)p), "append string");
        }
        finally
        {
            Marshal.FreeCoTaskMem(p);
        }
    }

    public static void AppendBool(nint message, bool value)
    {
        int b = value ? 1 : 0; // D-Bus booleans are 32-bit
        Check(LibSystemd.sd_bus_message_append_basic(message, LibSystemd.SD_BUS_TYPE_BOOLEAN, &b), "append boolean");
    }

    public static void AppendUInt64(nint message, ulong value) =>
        Check(LibSystemd.sd_bus_message_append_basic(message, LibSystemd.SD_BUS_TYPE_UINT64, &value), "append uint64");

    public static void AppendInt32(nint message, int value) =>
        Check(LibSystemd.sd_bus_message_append_basic(message, LibSystemd.SD_BUS_TYPE_INT32, &value), "append int32");

    /// <summary>Builds and sends the method return for <paramref name="call"/>.</summary>
    public static void Reply(nint call, Action<nint> append)
    {
        nint reply;
        Check(LibSystemd.sd_bus_message_new_method_return(call, &reply), "new method return");
        try
        {
            append(reply);
            Check(LibSystemd.sd_bus_send(0, reply, null), "send reply");
        }
        finally
        {
            LibSystemd.sd_bus_message_unref(reply);
        }
    }

    /// <summary>Answers <paramref name="call"/> with a D-Bus error (sd-bus copies both strings).</summary>
    public static int ReplyError(nint call, string name, string message)
    {
        var n = Marshal.StringToCoTaskMemUTF8(name);
        var m = Marshal.StringToCoTaskMemUTF8(message);
        try
        {
            var e = new SdBusError { Name = (byte*)n, Message = (byte*)m };
            return LibSystemd.sd_bus_reply_method_error(call, &e);
        }
        finally
        {
            Marshal.FreeCoTaskMem(n);
            Marshal.FreeCoTaskMem(m);
        }
    }
}
